//! The TensorFlow.js reader never panics on any model.json and weight bytes;
//! every convolution it accepts has a kernel and a bias of the sizes its
//! shape states.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::tfjs::GraphModel;

fuzz_target!(|data: &[u8]| {
    // The model.json, then a NUL byte, then the weight bytes.
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let Ok(json) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(graph) = GraphModel::parse(json) else {
        return;
    };
    graph.weight_files();
    let weights = data.get(split + 1..).unwrap_or(&[]);
    let Ok(convolutions) = graph.convolutions(weights) else {
        return;
    };
    for conv in convolutions {
        let [out, cin, kh, kw] = conv.shape;
        assert_eq!(conv.kernel.len(), out * cin * kh * kw, "{}", conv.name);
        if let Some(bias) = &conv.bias {
            assert_eq!(bias.len(), out, "{}", conv.name);
        }
    }
});
