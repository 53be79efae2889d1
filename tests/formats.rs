//! Label formats. The fixtures under `tests/fixtures/formats/` were written by
//! hand to the published format descriptions, laid out as the common tools
//! write them (COCO as CVAT exports it; YOLO as LabelImg and Ultralytics
//! write it, Windows line ends and a missing final newline included; Pascal
//! VOC as the devkit, LabelImg and CVAT write it, with `<part>`, `<pose>`,
//! `<truncated>`, `<difficult>`, float coordinates and a byte-order mark),
//! and all describe one set: a unicode file name, an image without boxes and
//! a class with a space. Each reads as that set; every format round trips
//! awkward sets; malformed files are refused naming the file and the line or
//! field; and the CLI converts between every pair of formats and exports the
//! labels of verdicts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;
use veritune::dataset::{read_coco_file, read_voc_folder, read_yolo_folder, write_labels};
use veritune::formats::coco::{read_coco, to_coco_json};
use veritune::formats::voc::{read_voc, write_voc};
use veritune::formats::yolo::{read_yolo, write_yolo};
use veritune::formats::{Format, ImageLabels, ImageSize, LabelSet, TextFile};
use veritune::geometry::{BBox, Detection, LabeledBox};
use veritune::verdict::{ImageVerdicts, Judgement, ShownBox};

fn fixture(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(format)
}

/// The folder of one test (or one part of it).
fn testdir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("formats")
        .join(name)
}

/// An empty folder for one test.
fn workdir(name: &str) -> PathBuf {
    let dir = testdir(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("old test folder is removable");
    }
    std::fs::create_dir_all(&dir).expect("test folder is writable");
    dir
}

fn labeled(x0: f32, y0: f32, x1: f32, y1: f32, class: usize) -> LabeledBox {
    LabeledBox {
        bbox: BBox::new(x0, y0, x1, y1),
        class,
    }
}

fn image(file_name: &str, width: u32, height: u32, boxes: Vec<LabeledBox>) -> ImageLabels {
    ImageLabels {
        file_name: file_name.into(),
        width,
        height,
        boxes,
    }
}

/// The set every fixture describes.
fn reference() -> LabelSet {
    LabelSet {
        class_names: vec!["person".into(), "car".into(), "traffic light".into()],
        images: vec![
            image(
                "café_画像.png",
                640,
                480,
                vec![
                    labeled(10.0, 20.0, 110.0, 220.0, 0),
                    labeled(400.0, 300.0, 600.0, 420.0, 1),
                    labeled(300.5, 40.0, 340.25, 120.75, 2),
                ],
            ),
            image("empty.png", 100, 50, Vec::new()),
            image(
                "street scene.jpg",
                320,
                240,
                vec![
                    labeled(0.0, 100.0, 160.0, 240.0, 1),
                    labeled(200.0, 30.0, 232.0, 150.0, 0),
                ],
            ),
        ],
    }
}

/// Asserts the same classes, images and boxes, corners within `tolerance`
/// pixels.
fn assert_close(actual: &LabelSet, expected: &LabelSet, tolerance: f32) {
    assert_eq!(actual.class_names, expected.class_names);
    assert_eq!(actual.images.len(), expected.images.len());
    for (a, e) in actual.images.iter().zip(&expected.images) {
        assert_eq!(
            (&a.file_name, a.width, a.height, a.boxes.len()),
            (&e.file_name, e.width, e.height, e.boxes.len())
        );
        for (x, y) in a.boxes.iter().zip(&e.boxes) {
            assert_eq!(x.class, y.class, "{}: {x:?} vs {y:?}", a.file_name);
            let corners = |b: &BBox| [b.x0, b.y0, b.x1, b.y1];
            for (u, v) in corners(&x.bbox).into_iter().zip(corners(&y.bbox)) {
                assert!(
                    (u - v).abs() <= tolerance,
                    "{}: {x:?} vs {y:?}",
                    a.file_name
                );
            }
        }
    }
}

/// Writes a blank image of each image's size under `dir` (PNG or JPEG by name).
fn write_images(dir: &Path, images: &[ImageLabels]) {
    for image in images {
        let path = dir.join(&image.file_name);
        std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("folder");
        let pixels = vec![128u8; (image.width * image.height * 3) as usize];
        ::image::save_buffer(
            &path,
            &pixels,
            image.width,
            image.height,
            ::image::ExtendedColorType::Rgb8,
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// The fixture images in a folder of their own.
fn reference_images(name: &str) -> PathBuf {
    let dir = workdir(name);
    write_images(&dir, &reference().images);
    dir
}

#[test]
fn coco_fixture_in_cvats_layout_reads_as_the_reference_set() {
    let set = read_coco_file(&fixture("coco/instances.json")).expect("valid COCO");
    assert_close(&set, &reference(), 0.0);
}

#[test]
fn yolo_fixture_in_labelimgs_layout_reads_as_the_reference_set() {
    let images = reference_images("yolo-fixture");
    let set = read_yolo_folder(&fixture("yolo"), &images).expect("valid YOLO");
    // LabelImg writes six decimals: 0.5e-6 of 640 pixels.
    assert_close(&set, &reference(), 1e-3);
}

#[test]
fn voc_fixture_in_devkit_labelimg_and_cvat_layouts_reads_as_the_reference_set() {
    let set = read_voc_folder(&fixture("voc")).expect("valid VOC");
    assert_close(&set, &reference(), 0.0);
}

/// Sorted by name, as the YOLO and VOC folder readers list them, and with
/// the classes in order of first appearance, as VOC numbers them.
fn awkward() -> LabelSet {
    LabelSet {
        class_names: vec![
            "traffic light".into(),
            "R&D <sign> \"v2\" 'ok'".into(),
            "猫".into(),
        ],
        images: vec![
            image(
                "a&b <c>.png",
                33,
                17,
                vec![
                    labeled(0.0, 0.0, 33.0, 17.0, 0),
                    labeled(1.0 / 3.0, 2.5, 7.125, 16.999, 1),
                ],
            ),
            image(
                "b.jpeg",
                640,
                480,
                vec![
                    labeled(33.3, 0.1, 100.7, 479.9, 2),
                    labeled(620.0, 470.0, 640.0, 480.0, 0),
                ],
            ),
            image("empty image.png", 20, 10, Vec::new()),
            image(
                "été/ñandú 写真.jpg",
                48,
                64,
                vec![labeled(3.0, 4.0, 30.5, 15.25, 1)],
            ),
        ],
    }
}

#[test]
fn awkward_sets_round_trip_through_files_in_every_format() {
    let set = awkward();
    let images = workdir("awkward-images");
    write_images(&images, &set.images);
    for format in Format::ALL {
        let dir = workdir(&format!("awkward-{format}"));
        let output = match format {
            Format::Coco => dir.join("labels.json"),
            Format::Yolo | Format::Voc => dir.clone(),
        };
        write_labels(format, &set, &output).expect("writable");
        let read = match format {
            Format::Coco => read_coco_file(&output),
            Format::Yolo => read_yolo_folder(&output, &images),
            Format::Voc => read_voc_folder(&output),
        }
        .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(read, set, "{format}");
    }
    let yolo = testdir("awkward-yolo");
    let yolo_dir = |name: &str| std::fs::read_to_string(yolo.join(name)).expect(name);
    assert_eq!(
        yolo_dir("classes.txt"),
        "traffic light\nR&D <sign> \"v2\" 'ok'\n猫\n"
    );
    assert_eq!(yolo_dir("empty image.txt"), "");
    assert_eq!(
        yolo_dir("a&b <c>.txt").lines().next(),
        Some("0 0.5 0.5 1 1")
    );
    assert!(yolo.join("été/ñandú 写真.txt").is_file());
    let voc = testdir("awkward-voc");
    let xml = std::fs::read_to_string(voc.join("a&b <c>.xml")).expect("written");
    assert!(
        xml.contains("<filename>a&amp;b &lt;c&gt;.png</filename>"),
        "{xml}"
    );
    assert!(xml.contains("R&amp;D &lt;sign&gt;"), "{xml}");
    assert!(
        xml.contains("<xmin>1</xmin>") && xml.contains("<xmax>33</xmax>"),
        "{xml}"
    );
    let nested = std::fs::read_to_string(voc.join("été/ñandú 写真.xml")).expect("written");
    assert!(nested.contains("<folder>été</folder>"), "{nested}");
    assert!(
        nested.contains("<filename>ñandú 写真.jpg</filename>"),
        "{nested}"
    );
}

/// `set` with its classes renumbered to follow `class_names`, to compare sets
/// whose formats number classes differently.
fn renumbered(set: &LabelSet, class_names: &[String]) -> LabelSet {
    let mut out = set.clone();
    out.class_names = class_names.to_vec();
    for labeled in out.images.iter_mut().flat_map(|i| i.boxes.iter_mut()) {
        let name = &set.class_names[labeled.class];
        labeled.class = class_names
            .iter()
            .position(|n| n == name)
            .expect("every class read was written");
    }
    out
}

/// Random sets: up to four images with up to four boxes inside them, on a
/// sixteenth-of-a-pixel grid.
fn random_set() -> impl Strategy<Value = LabelSet> {
    let one_image = (1u32..2000, 1u32..2000).prop_flat_map(|(width, height)| {
        let corner = move |side: u32| (0..=side * 16, 0..=side * 16);
        let bbox = (corner(width), corner(height), 0usize..3).prop_filter_map(
            "a box with an area",
            |((xa, xb), (ya, yb), class)| {
                let (x0, x1) = (xa.min(xb) as f32 / 16.0, xa.max(xb) as f32 / 16.0);
                let (y0, y1) = (ya.min(yb) as f32 / 16.0, ya.max(yb) as f32 / 16.0);
                (x1 > x0 && y1 > y0).then(|| labeled(x0, y0, x1, y1, class))
            },
        );
        (Just((width, height)), prop::collection::vec(bbox, 0..4))
    });
    prop::collection::vec(one_image, 0..4).prop_map(|images| LabelSet {
        class_names: vec!["a b".into(), "ü".into(), "<c>".into()],
        images: images
            .into_iter()
            .enumerate()
            .map(|(i, ((width, height), boxes))| {
                image(&format!("dir {i}/img {i}.png"), width, height, boxes)
            })
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sets_round_trip_in_memory(set in random_set()) {
        let coco = read_coco(&to_coco_json(&set)).expect("own COCO");
        prop_assert_eq!(&coco, &set);

        let files = write_yolo(&set).expect("writable YOLO");
        let sizes: Vec<ImageSize> = set
            .images
            .iter()
            .map(|i| ImageSize { file_name: i.file_name.clone(), width: i.width, height: i.height })
            .collect();
        let yolo = read_yolo(&files[0], &sizes, &files[1..]).expect("own YOLO");
        prop_assert_eq!(&yolo, &set);

        let voc = read_voc(&write_voc(&set).expect("writable VOC")).expect("own VOC");
        prop_assert_eq!(renumbered(&voc, &set.class_names), set);
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[test]
fn malformed_yolo_files_are_refused_naming_the_file_and_line() {
    let images = workdir("bad-yolo-images");
    write_images(&images, &[image("x.png", 100, 50, Vec::new())]);
    let labels = workdir("bad-yolo");
    let error = || {
        read_yolo_folder(&labels, &images)
            .expect_err("malformed")
            .to_string()
    };
    let message = error();
    assert!(
        message.contains("neither classes.txt nor obj.names"),
        "{message}"
    );

    write(&labels, "obj.names", "a\nb\n");
    write(&labels, "x.txt", "0 0.5 0.5 0.1 0.1\n1 0.5 0.5 0.1\n");
    let message = error();
    assert!(message.contains(&labels.display().to_string()), "{message}");
    assert!(
        message.contains("x.txt, line 2: it has 4 values where 5"),
        "{message}"
    );

    write(&labels, "x.txt", "\n\n3 0.5 0.5 0.1 0.1");
    let message = error();
    assert!(
        message.contains("x.txt, line 3: class 3 is not in the class list, which has 2 classes"),
        "{message}"
    );

    write(&labels, "x.txt", "1 0.5 0.5 0.1 0.1e");
    assert!(error().contains("the height '0.1e' is not a number"));

    write(&labels, "x.txt", "1 0.5 0.5 0.1 0.2\n");
    write(&labels, "y.txt", "");
    assert!(error().contains("the label file y.txt has no image"));

    std::fs::remove_file(labels.join("y.txt")).expect("removable");
    let set = read_yolo_folder(&labels, &images).expect("Darknet's obj.names is a class list");
    assert_eq!(set.class_names, ["a", "b"]);
    assert_eq!(
        set.images[0].boxes,
        vec![labeled(45.0, 20.0, 55.0, 30.0, 1)]
    );
}

#[test]
fn malformed_voc_files_are_refused_naming_the_file_and_field() {
    let dir = workdir("bad-voc");
    let good = std::fs::read_to_string(fixture("voc/street scene.xml")).expect("fixture");
    let error = |text: &str| {
        write(&dir, "bad.xml", text);
        read_voc_folder(&dir).expect_err("malformed").to_string()
    };
    let message = error(&good.replace("<height>240</height>", ""));
    assert!(
        message.contains("bad.xml, line 15: size/height is missing"),
        "{message}"
    );
    let message = error(&good.replace("<ymax>150</ymax>", "<ymax>1S0</ymax>"));
    assert!(
        message.contains("bad.xml, line 49: object 2/bndbox/ymax is '1S0', which is not a number"),
        "{message}"
    );
    let message = error(&good.replace("</bndbox>\n\t\t<part>", "\n\t\t<part>"));
    assert!(
        message.contains("bad.xml, line") && message.contains("not well-formed"),
        "{message}"
    );
    let message = error(&good.replace("<name>person</name>", "<name> </name>"));
    assert!(
        message.contains("object 2/name is missing or empty"),
        "{message}"
    );
    assert!(message.contains(&dir.display().to_string()), "{message}");
}

#[test]
fn malformed_coco_files_are_refused_naming_the_file_and_line() {
    let dir = workdir("bad-coco");
    let good = std::fs::read_to_string(fixture("coco/instances.json")).expect("fixture");
    write(
        &dir,
        "bad.json",
        &good.replace("\"bbox\": [200, 30, 32, 120]", "\"bbox\": [200, 30, 32]"),
    );
    let message = read_coco_file(&dir.join("bad.json"))
        .expect_err("short bbox")
        .to_string();
    assert!(message.contains("bad.json"), "{message}");
    assert!(message.contains("line 113"), "{message}");
}

fn veritune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veritune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("test paths are Unicode")
}

/// The fixture of `format`: a file for COCO, a folder for the others.
fn fixture_input(format: Format) -> PathBuf {
    match format {
        Format::Coco => fixture("coco/instances.json"),
        Format::Yolo => fixture("yolo"),
        Format::Voc => fixture("voc"),
    }
}

#[test]
fn cli_converts_between_every_pair_of_formats() {
    let images = reference_images("cli-images");
    for from in Format::ALL {
        for to in Format::ALL {
            let dir = workdir(&format!("cli-{from}-{to}"));
            let output = match to {
                Format::Coco => dir.join("out.json"),
                Format::Yolo | Format::Voc => dir.join("out"),
            };
            let out = veritune(&[
                "labels",
                "convert",
                "--from",
                from.name(),
                "--to",
                to.name(),
                path(&fixture_input(from)),
                path(&output),
                "--images",
                path(&images),
            ]);
            assert!(out.status.success(), "{from} → {to}: {}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("3 images, 5 boxes and 3 classes"),
                "{}",
                text(&out.stderr)
            );
            let read = match to {
                Format::Coco => read_coco_file(&output),
                Format::Yolo => read_yolo_folder(&output, &images),
                Format::Voc => read_voc_folder(&output),
            }
            .unwrap_or_else(|e| panic!("{from} → {to}: {e}"));
            assert_close(&read, &reference(), 1e-3);
        }
    }
}

#[test]
fn cli_refuses_yolo_input_without_images_in_one_line() {
    let dir = workdir("cli-yolo-no-images");
    let out = veritune(&[
        "labels",
        "convert",
        "--from",
        "yolo",
        "--to",
        "coco",
        path(&fixture("yolo")),
        path(&dir.join("out.json")),
    ]);
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains("--images"), "{message}");
    let out = veritune(&[
        "labels", "convert", "--from", "kitti", "--to", "coco", "in", "out",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("coco, yolo or voc"));
}

fn shown(bbox: BBox, class: usize, judgement: Judgement) -> ShownBox {
    ShownBox {
        detection: Detection {
            bbox,
            class,
            score: 0.8,
        },
        judgement: Some(judgement),
    }
}

#[test]
fn cli_exports_the_labels_of_verdicts_in_every_format() {
    let dir = workdir("cli-export");
    let images = reference_images("cli-export-images");
    let model = dir.join("model.safetensors");
    let out = veritune(&[
        "init",
        "--classes",
        "person,traffic light",
        "--input-size",
        "64",
        "--output",
        path(&model),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let corrected = labeled(300.5, 40.0, 340.25, 120.75, 1);
    let drawn = labeled(200.0, 30.0, 232.0, 150.0, 0);
    let verdicts = BTreeMap::from([
        (
            "café_画像.png".to_string(),
            ImageVerdicts {
                shown: vec![
                    shown(BBox::new(10.0, 20.0, 110.0, 220.0), 0, Judgement::Confirmed),
                    shown(
                        BBox::new(290.0, 30.0, 330.0, 110.0),
                        0,
                        Judgement::Corrected { label: corrected },
                    ),
                    shown(BBox::new(1.0, 1.0, 9.0, 9.0), 1, Judgement::Rejected),
                ],
                drawn: Vec::new(),
                reviewed_classes: None,
            },
        ),
        (
            "street scene.jpg".to_string(),
            ImageVerdicts {
                shown: Vec::new(),
                drawn: vec![drawn],
                reviewed_classes: None,
            },
        ),
    ]);
    let verdicts_file = dir.join("verdicts.json");
    write(
        &dir,
        "verdicts.json",
        &serde_json::to_string(&verdicts).expect("JSON"),
    );
    let expected = LabelSet {
        class_names: vec!["person".into(), "traffic light".into()],
        images: vec![
            image(
                "café_画像.png",
                640,
                480,
                vec![labeled(10.0, 20.0, 110.0, 220.0, 0), corrected],
            ),
            image("street scene.jpg", 320, 240, vec![drawn]),
        ],
    };
    for to in Format::ALL {
        let output = match to {
            Format::Coco => dir.join("labels.json"),
            Format::Yolo | Format::Voc => dir.join(to.name()),
        };
        let out = veritune(&[
            "labels",
            "export",
            "--verdicts",
            path(&verdicts_file),
            "--images",
            path(&images),
            "--model",
            path(&model),
            "--to",
            to.name(),
            path(&output),
        ]);
        assert!(out.status.success(), "{to}: {}", text(&out.stderr));
        let read = match to {
            Format::Coco => read_coco_file(&output),
            Format::Yolo => read_yolo_folder(&output, &images).map(|mut set| {
                // The images folder also holds empty.png, which has no verdicts.
                set.images.retain(|i| i.file_name != "empty.png");
                set
            }),
            Format::Voc => read_voc_folder(&output),
        }
        .unwrap_or_else(|e| panic!("{to}: {e}"));
        assert_close(&read, &expected, 1e-3);
    }
    assert!(!dir.join("yolo/empty.txt").exists());

    write(
        &dir,
        "verdicts.json",
        r#"{"missing.png": {"shown": [], "drawn": []}}"#,
    );
    let out = veritune(&[
        "labels",
        "export",
        "--verdicts",
        path(&verdicts_file),
        "--images",
        path(&images),
        "--model",
        path(&model),
        "--to",
        "coco",
        path(&dir.join("x.json")),
    ]);
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert!(
        message.contains("verdicts.json") && message.contains("'missing.png'"),
        "{message}"
    );
}

#[test]
fn yolo_label_files_are_named_after_their_images() {
    let files = write_yolo(&reference()).expect("writable");
    let names: Vec<&str> = files.iter().map(|f: &TextFile| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "classes.txt",
            "café_画像.txt",
            "empty.txt",
            "street scene.txt"
        ]
    );
}
