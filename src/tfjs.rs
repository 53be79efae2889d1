//! TensorFlow.js graph models as files: the `model.json` (graph and weights
//! manifest), the weight bytes decoded to `f32` (float32, float16-quantised
//! float32, int32), and the graph's 2-D convolutions with their kernels in
//! burn's layout. Pure logic, no tensors: reading files is the caller's.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

/// Why TensorFlow.js files cannot be read.
#[derive(Debug, Error, PartialEq)]
pub enum TfjsError {
    /// The model file is not JSON of a TensorFlow.js graph model.
    #[error(
        "the model file is not a TensorFlow.js graph model ({0}): give the model.json of a graph model"
    )]
    NotGraphModel(String),
    /// A weight has a data type or quantisation this reader does not decode.
    #[error(
        "the weight '{name}' is stored as {dtype}, which veritune does not read (it reads float32, float16-quantised float32 and int32)"
    )]
    UnsupportedDtype {
        /// The weight's name.
        name: String,
        /// Its stored type.
        dtype: String,
    },
    /// The weight bytes are not as long as the manifest says.
    #[error(
        "the weight file has {found} bytes but the manifest describes {expected}: it belongs to another model or is truncated; download it again"
    )]
    WeightBytes {
        /// Bytes the manifest describes.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A graph node refers to a weight the manifest lacks, or a kernel is not 4-D.
    #[error("the graph's node '{node}' is inconsistent: {problem}; the model file is damaged")]
    BadNode {
        /// The node's name.
        node: String,
        /// What is wrong.
        problem: String,
    },
}

/// One entry of the weights manifest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct WeightSpec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Quantization {
    dtype: String,
}

/// A group of weights stored in the files `paths`, one after another.
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct ManifestGroup {
    paths: Vec<String>,
    weights: Vec<WeightSpec>,
}

/// A node of the graph: its operation and the names of its inputs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Node {
    name: String,
    op: String,
    #[serde(default)]
    input: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Topology {
    node: Vec<Node>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
    format: String,
    model_topology: Topology,
    weights_manifest: Vec<ManifestGroup>,
}

/// A TensorFlow.js graph model's `model.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphModel {
    nodes: Vec<Node>,
    groups: Vec<ManifestGroup>,
}

/// A decoded weight: its shape and values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Shape as in the manifest.
    pub shape: Vec<usize>,
    /// Values as `f32` (int32 values converted).
    pub values: Vec<f32>,
}

/// A 2-D convolution of the graph with its weights in burn's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Convolution {
    /// The graph node's name.
    pub name: String,
    /// Kernel shape `[out, in, kernel height, kernel width]`.
    pub shape: [usize; 4],
    /// Kernel values in that layout.
    pub kernel: Vec<f32>,
    /// Bias per output channel: the constant the graph adds right after the
    /// convolution, if any.
    pub bias: Option<Vec<f32>>,
}

/// The value of IEEE 754 half-precision `bits`, exactly.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        0x1f if mantissa == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// A TensorFlow kernel `[kh, kw, in, out]` (HWIO) as burn's `[out, in, kh, kw]`.
pub fn hwio_to_oihw(values: &[f32], [kh, kw, cin, cout]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cin {
                for o in 0..cout {
                    out[((o * cin + i) * kh + y) * kw + x] =
                        values[((y * kw + x) * cin + i) * cout + o];
                }
            }
        }
    }
    out
}

impl WeightSpec {
    /// Bytes per stored value.
    fn stored_width(&self) -> Result<usize, TfjsError> {
        let quantised = self.quantization.as_ref().map(|q| q.dtype.as_str());
        match (self.dtype.as_str(), quantised) {
            ("float32", Some("float16")) => Ok(2),
            ("float32" | "int32", None) => Ok(4),
            (dtype, q) => Err(TfjsError::UnsupportedDtype {
                name: self.name.clone(),
                dtype: q.map_or(dtype.to_string(), |q| format!("{dtype} quantised to {q}")),
            }),
        }
    }

    /// The values of stored `bytes`, `width` bytes each.
    fn decode(&self, bytes: &[u8], width: usize) -> Vec<f32> {
        match (self.dtype.as_str(), width) {
            (_, 2) => bytes
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            ("int32", _) => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        }
    }
}

impl GraphModel {
    /// Parses a graph model's `model.json`.
    pub fn parse(json: &str) -> Result<Self, TfjsError> {
        let model: ModelJson =
            serde_json::from_str(json).map_err(|e| TfjsError::NotGraphModel(e.to_string()))?;
        if model.format != "graph-model" {
            return Err(TfjsError::NotGraphModel(format!(
                "its format is '{}'",
                model.format
            )));
        }
        Ok(Self {
            nodes: model.model_topology.node,
            groups: model.weights_manifest,
        })
    }

    /// The weight files the manifest names, in the order their bytes are
    /// concatenated.
    pub fn weight_files(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.paths.clone()).collect()
    }

    /// Every weight, by name, from the weight files' bytes concatenated in
    /// [`GraphModel::weight_files`] order.
    pub fn weights(&self, data: &[u8]) -> Result<BTreeMap<String, Weight>, TfjsError> {
        let specs: Vec<&WeightSpec> = self.groups.iter().flat_map(|g| &g.weights).collect();
        let mut extents = Vec::with_capacity(specs.len());
        let mut offset = 0;
        for spec in &specs {
            let width = spec.stored_width()?;
            let len = spec.shape.iter().product::<usize>() * width;
            extents.push((offset..offset + len, width));
            offset += len;
        }
        if offset != data.len() {
            return Err(TfjsError::WeightBytes {
                expected: offset,
                found: data.len(),
            });
        }
        Ok(specs
            .into_iter()
            .zip(extents)
            .map(|(spec, (extent, width))| {
                let weight = Weight {
                    shape: spec.shape.clone(),
                    values: spec.decode(&data[extent], width),
                };
                (spec.name.clone(), weight)
            })
            .collect())
    }

    /// The graph's `Conv2D` nodes with their kernels (HWIO constants, turned
    /// to burn's layout) and the bias constants added to their outputs, in
    /// the order the converter numbered them (`convolution`,
    /// `convolution_1`, ...: the exported network's execution order; the
    /// graph lists its nodes in another order).
    pub fn convolutions(&self, data: &[u8]) -> Result<Vec<Convolution>, TfjsError> {
        let weights = self.weights(data)?;
        let bad = |node: &Node, problem: String| TfjsError::BadNode {
            node: node.name.clone(),
            problem,
        };
        let mut nodes: Vec<&Node> = self.nodes.iter().filter(|n| n.op == "Conv2D").collect();
        nodes.sort_by_key(|n| name_number(&n.name));
        nodes
            .into_iter()
            .map(|node| {
                let kernel_name = node
                    .input
                    .get(1)
                    .ok_or_else(|| bad(node, "it has no kernel input".into()))?;
                let kernel = weights.get(kernel_name).ok_or_else(|| {
                    bad(node, format!("its kernel '{kernel_name}' is not stored"))
                })?;
                let hwio: [usize; 4] = kernel.shape.as_slice().try_into().map_err(|_| {
                    bad(
                        node,
                        format!("its kernel has shape {:?}, not 4-D", kernel.shape),
                    )
                })?;
                let [kh, kw, cin, cout] = hwio;
                let bias = self
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.op.as_str(), "Add" | "AddV2" | "BiasAdd"))
                    .filter(|n| n.input.first() == Some(&node.name))
                    .find_map(|n| n.input.get(1).and_then(|b| weights.get(b)))
                    .map(|b| b.values.clone());
                if let Some(bias) = &bias
                    && bias.len() != cout
                {
                    return Err(bad(
                        node,
                        format!("its bias has {} values for {cout} outputs", bias.len()),
                    ));
                }
                Ok(Convolution {
                    name: node.name.clone(),
                    shape: [cout, cin, kh, kw],
                    kernel: hwio_to_oihw(&kernel.values, hwio),
                    bias,
                })
            })
            .collect()
    }
}

/// The number a converter appends to a node name (`conv_12` is 12), 0 for
/// none.
fn name_number(name: &str) -> u64 {
    name.rsplit_once('_')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode_exactly() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn kernels_move_from_hwio_to_oihw() {
        // kh 1, kw 2, in 2, out 3: value = 1000 y + 100 x + 10 i + o.
        let shape = [1, 2, 2, 3];
        let mut hwio = Vec::new();
        for x in 0..2 {
            for i in 0..2 {
                for o in 0..3 {
                    hwio.push((100 * x + 10 * i + o) as f32);
                }
            }
        }
        let oihw = hwio_to_oihw(&hwio, shape);
        for o in 0..3 {
            for i in 0..2 {
                for x in 0..2 {
                    assert_eq!(oihw[(o * 2 + i) * 2 + x], (100 * x + 10 * i + o) as f32);
                }
            }
        }
    }

    /// A graph of one convolution with a bias, weights as float16 and an int32
    /// constant between them.
    fn model_json(kernel_dtype: &str) -> String {
        let quantization = match kernel_dtype {
            "float16" => r#", "quantization": {"dtype": "float16", "original_dtype": "float32"}"#,
            _ => "",
        };
        format!(
            r#"{{"format": "graph-model", "modelTopology": {{"node": [
                {{"name": "x", "op": "Placeholder"}},
                {{"name": "k", "op": "Const"}},
                {{"name": "conv", "op": "Conv2D", "input": ["x", "k"]}},
                {{"name": "b", "op": "Const"}},
                {{"name": "add", "op": "Add", "input": ["conv", "b"]}}
            ]}}, "weightsManifest": [{{"paths": ["w.bin"], "weights": [
                {{"name": "k", "shape": [1, 1, 2, 1], "dtype": "float32"{quantization}}},
                {{"name": "perm", "shape": [2], "dtype": "int32"}},
                {{"name": "b", "shape": [1], "dtype": "float32"{quantization}}}
            ]}}]}}"#
        )
    }

    fn half_bytes() -> Vec<u8> {
        let mut data = Vec::new();
        data.extend(0x3c00u16.to_le_bytes()); // k = [1.0, -2.0]
        data.extend(0xc000u16.to_le_bytes());
        data.extend(7i32.to_le_bytes());
        data.extend(3i32.to_le_bytes());
        data.extend(0x3800u16.to_le_bytes()); // b = 0.5
        data
    }

    #[test]
    fn convolutions_come_with_their_biases_in_burn_layout() {
        let model = GraphModel::parse(&model_json("float16")).unwrap();
        assert_eq!(model.weight_files(), vec!["w.bin".to_string()]);
        let weights = model.weights(&half_bytes()).unwrap();
        assert_eq!(weights["perm"].values, vec![7.0, 3.0]);
        let convs = model.convolutions(&half_bytes()).unwrap();
        assert_eq!(
            convs,
            vec![Convolution {
                name: "conv".into(),
                shape: [1, 2, 1, 1],
                kernel: vec![1.0, -2.0],
                bias: Some(vec![0.5]),
            }]
        );
    }

    #[test]
    fn convolutions_follow_their_numbers_not_the_node_list() {
        let json = model_json("float16").replace(
            r#"{"name": "x", "op": "Placeholder"},"#,
            r#"{"name": "x", "op": "Placeholder"},
                {"name": "conv_10", "op": "Conv2D", "input": ["x", "k"]},
                {"name": "conv_2", "op": "Conv2D", "input": ["x", "k"]},"#,
        );
        let convs = GraphModel::parse(&json)
            .unwrap()
            .convolutions(&half_bytes())
            .unwrap();
        let names: Vec<&str> = convs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["conv", "conv_2", "conv_10"]);
        assert_eq!(convs[1].bias, None);
    }

    #[test]
    fn float32_weights_take_four_bytes_each() {
        let model = GraphModel::parse(&model_json("float32")).unwrap();
        let mut data: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        data.extend([0u8; 8]);
        data.extend(4.0f32.to_le_bytes());
        let convs = model.convolutions(&data).unwrap();
        assert_eq!(convs[0].kernel, vec![1.5, -0.25]);
        assert_eq!(convs[0].bias, Some(vec![4.0]));
    }

    #[test]
    fn wrong_byte_counts_and_formats_are_refused() {
        let model = GraphModel::parse(&model_json("float16")).unwrap();
        let mut long = half_bytes();
        long.push(0);
        assert_eq!(
            model.weights(&long),
            Err(TfjsError::WeightBytes {
                expected: 14,
                found: 15
            })
        );
        assert!(matches!(
            GraphModel::parse(
                r#"{"format": "layers-model", "modelTopology": {"node": []}, "weightsManifest": []}"#
            ),
            Err(TfjsError::NotGraphModel(_))
        ));
        assert!(matches!(
            GraphModel::parse("[1, 2]"),
            Err(TfjsError::NotGraphModel(_))
        ));
        let uint8 = model_json("float16").replace(r#""dtype": "float16""#, r#""dtype": "uint8""#);
        assert!(matches!(
            GraphModel::parse(&uint8).unwrap().weights(&half_bytes()),
            Err(TfjsError::UnsupportedDtype { .. })
        ));
    }
}
