//! Export to PyTorch: `model.safetensors` holds exactly the state dict `model.py` declares and
//! PyTorch builds, and PyTorch's eval-mode output from it is ours.
//!
//! The cases cover a plain `nn.Sequential` CNN, a ResNet, a depthwise-separable network, every
//! layer kind with non-default arguments (concatenated branches, squeeze-excitation, a graph
//! with concat and zero edges), lazy layers, and a NAS-Bench-201 cell network with all five
//! operations. Their BatchNorm statistics are moved by two training batches first, so eval mode
//! reads non-trivial running statistics. `fixtures/export.json` holds PyTorch's outputs and
//! state dicts for these exact networks and inputs (regenerate with
//! `scripts/export_fixture.sh`); the live test runs PyTorch itself when a python with torch
//! is found (`NAS_TORCH_PYTHON`, else `~/.cache/torch-cpu-venv/bin/python`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arch_space::lang::{parse, InputSpec, Module};
use arch_space::nb201::{Nb201Cell, Nb201Network};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use trainer::export::{export, Format, ARCH_FILE, MODULE_FILE, WEIGHTS_FILE};
use trainer::model::{Mode, Network};
use trainer::TrainError;

use common::{assert_close, random};

const SEED: u64 = 7;
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/export.json");
/// Largest error allowed, relative to the largest output magnitude: float32 round-off of
/// different summation orders through ~40 layers, with a wide margin.
const TOLERANCE: f32 = 1e-4;

struct Case {
    name: &'static str,
    module: Module,
    input: InputSpec,
}

fn arch(path: &str) -> Module {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    parse(&std::fs::read_to_string(&path).unwrap())
        .unwrap()
        .module
}

fn cases() -> Vec<Case> {
    let small = InputSpec {
        height: 16,
        width: 16,
        ..InputSpec::cifar10()
    };
    let cell = Nb201Cell::from_arch_str(
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    )
    .unwrap();
    let nb201 = Nb201Network {
        cells_per_stage: 2,
        ..Nb201Network::cifar10()
    };
    let file = |name, path, input| Case {
        name,
        module: arch(path),
        input,
    };
    vec![
        file("vgg_small", "../../examples/archs/vgg_small.arch", small),
        file("resnet8", "../../examples/archs/resnet8.arch", small),
        file("dwsep", "../../examples/archs/dwsep.arch", small),
        file("branches", "tests/fixtures/export/branches.arch", small),
        file("heads", "tests/fixtures/export/heads.arch", small),
        Case {
            name: "nb201",
            module: nb201.module(&cell),
            input: InputSpec::cifar10(),
        },
    ]
}

fn shape(input: &InputSpec, batch: usize) -> [usize; 4] {
    [batch, input.channels, input.height, input.width]
}

/// The case's network after two training batches (one through the tape, one through the plain
/// forward), and the evaluation input.
fn trained(case: &Case) -> (Network, Tensor) {
    let (network, _) = Network::build(&case.module, &case.input, SEED, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let batch = shape(&case.input, 8);
    let labels: Vec<u32> = (0..8).map(|i| i % case.input.classes as u32).collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let mut dropout = ChaCha8Rng::seed_from_u64(SEED + 1);
    let mut mode = Mode {
        train: true,
        rng: &mut dropout,
    };
    network
        .loss_and_gradients(&random(&mut rng, &batch), &labels, &mut mode)
        .unwrap();
    network
        .forward(&random(&mut rng, &batch), &mut mode)
        .unwrap();
    (network, random(&mut rng, &shape(&case.input, 3)))
}

fn eval(network: &Network, x: &Tensor) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut mode = Mode {
        train: false,
        rng: &mut rng,
    };
    network.forward(x, &mut mode).unwrap()
}

/// The largest difference relative to the largest magnitude of `reference`.
fn relative_error(ours: &Tensor, reference: &[f32]) -> f32 {
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "output sizes");
    let scale = reference.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Prints the error of `ours` against PyTorch's `reference` and asserts it is within
/// [`TOLERANCE`] (if the initialisation changed, regenerate the fixture with
/// `scripts/export_fixture.sh`).
fn compare(name: &str, ours: &Tensor, reference: &[f32]) {
    let error = relative_error(ours, reference);
    println!("{name}: max relative error {error:.2e} against PyTorch");
    let reference = Tensor::from_slice(reference, ours.dims(), &Device::Cpu).unwrap();
    assert_close(name, ours, &reference, (TOLERANCE, 1e-6));
}

/// `[name, shape, dtype]` of every tensor of a safetensors file, sorted by name.
fn file_entries(path: &Path) -> Vec<(String, Vec<usize>, String)> {
    let mut v: Vec<_> = candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let dtype = match t.dtype() {
                DType::F32 => "float32",
                DType::I64 => "int64",
                other => panic!("{name}: unexpected {other:?}"),
            };
            (name, t.dims().to_vec(), dtype.to_string())
        })
        .collect();
    v.sort();
    v
}

/// model.py's `STATE_DICT` table: name and shape, in the file's order.
fn declared(model_py: &str) -> Vec<(String, Vec<usize>)> {
    let table = model_py.split("STATE_DICT = {\n").nth(1).unwrap();
    table
        .lines()
        .take_while(|l| *l != "}")
        .map(|line| {
            let (name, dims) = line.trim().split_once(": ").unwrap();
            let dims = dims.trim_end_matches(',').trim_matches(['(', ')']);
            let shape = dims
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| d.parse().unwrap())
                .collect();
            (name.trim_matches('"').to_string(), shape)
        })
        .collect()
}

/// PyTorch's `[name, shape, dtype]` list from a fixture or output.json entry.
fn torch_entries(value: &Value) -> Vec<(String, Vec<usize>, String)> {
    serde_json::from_value(value["state_dict"].clone()).unwrap()
}

fn torch_output(value: &Value) -> Vec<f32> {
    serde_json::from_value(value["output"].clone()).unwrap()
}

/// Exports the case into `dir` with its input, checks the files against each other, and
/// returns the network and input.
fn export_case(case: &Case, dir: &Path) -> (Network, Tensor) {
    let (network, x) = trained(case);
    let written = export(&network, dir, Format::All).unwrap();
    assert_eq!(written.len(), 3, "{}: {written:?}", case.name);
    x.save_safetensors("input", dir.join("input.safetensors"))
        .unwrap();
    let model_py = std::fs::read_to_string(dir.join(MODULE_FILE)).unwrap();
    let declared = declared(&model_py);
    let mut from_table: Vec<_> = declared
        .iter()
        .map(|(name, shape)| {
            let dtype = if name.ends_with("num_batches_tracked") {
                "int64"
            } else {
                "float32"
            };
            (name.clone(), shape.clone(), dtype.to_string())
        })
        .collect();
    from_table.sort();
    assert_eq!(
        file_entries(&dir.join(WEIGHTS_FILE)),
        from_table,
        "{}: the safetensors file against model.py's STATE_DICT",
        case.name
    );
    let text = std::fs::read_to_string(dir.join(ARCH_FILE)).unwrap();
    assert_eq!(
        &parse(&text).unwrap().module,
        network.module(),
        "{}",
        case.name
    );
    (network, x)
}

#[test]
fn exports_match_pytorchs_recorded_outputs() {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let (network, x) = export_case(&case, dir.path());
        let recorded = &fixture["cases"][case.name];
        // PyTorch's own state dict of model.py, in its order, is what we write.
        let ours: Vec<_> = network
            .state_entries()
            .iter()
            .map(|e| {
                let dtype = if e.shape.is_empty() {
                    "int64"
                } else {
                    "float32"
                };
                (e.name.clone(), e.shape.clone(), dtype.to_string())
            })
            .collect();
        assert_eq!(ours, torch_entries(recorded), "{}", case.name);
        let output = eval(&network, &x);
        let shape: Vec<usize> = serde_json::from_value(recorded["output_shape"].clone()).unwrap();
        assert_eq!(output.dims(), shape, "{}", case.name);
        compare(case.name, &output, &torch_output(recorded));
    }
}

#[test]
fn batch_counts_and_running_statistics_are_saved() {
    let case = &cases()[0];
    let dir = tempfile::tempdir().unwrap();
    export_case(case, dir.path());
    let tensors =
        candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    assert_eq!(
        tensors["1.num_batches_tracked"].to_scalar::<i64>().unwrap(),
        2
    );
    let mean = tensors["1.running_mean"].to_vec1::<f32>().unwrap();
    assert!(mean.iter().all(|v| v.is_finite()) && mean.iter().any(|v| *v != 0.0));
    // The plain forward in evaluation mode counts nothing.
    let (network, x) = trained(case);
    eval(&network, &x);
    let path = dir.path().join("again.safetensors");
    network.save_safetensors(&path).unwrap();
    let again = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(
        again["1.num_batches_tracked"].to_scalar::<i64>().unwrap(),
        2
    );
}

#[test]
fn weights_round_trip_and_mismatches_are_refused() {
    let cases = cases();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(WEIGHTS_FILE);
    for case in &cases {
        let (network, x) = trained(case);
        network.save_safetensors(&path).unwrap();
        let (fresh, _) =
            Network::build(&case.module, &case.input, SEED + 10, &Device::Cpu).unwrap();
        let before = eval(&fresh, &x)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        fresh.load_safetensors(&path).unwrap();
        let expected = eval(&network, &x)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let loaded = eval(&fresh, &x)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_ne!(
            before, expected,
            "{}: seeds give different weights",
            case.name
        );
        assert_eq!(loaded, expected, "{}", case.name);
        let (a, b) = (network.state_dict().unwrap(), fresh.state_dict().unwrap());
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            let diff = (ta.to_dtype(DType::F64).unwrap() - tb.to_dtype(DType::F64).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert_eq!(diff, 0.0, "{na}");
        }
    }
    // resnet8's weights do not fit vgg_small: strict loading names the first problem.
    let (resnet, _) = trained(&cases[1]);
    resnet.save_safetensors(&path).unwrap();
    let (vgg, x) = trained(&cases[0]);
    let unchanged = eval(&vgg, &x).to_vec2::<f32>().unwrap();
    let err = vgg.load_safetensors(&path).unwrap_err();
    assert!(matches!(err, TrainError::State { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("`0.weight` is F32 [16, 3, 3, 3], the network needs F32 [32, 3, 3, 3]"),
        "{err}"
    );
    // One tensor missing, one too many, or of another dtype.
    let mut tensors: BTreeMap<String, Tensor> = vgg.state_dict().unwrap().into_iter().collect();
    let var = tensors.remove("1.running_var").unwrap();
    candle_core::safetensors::save(&tensors.clone().into_iter().collect(), &path).unwrap();
    let err = vgg.load_safetensors(&path).unwrap_err().to_string();
    assert!(err.contains("`1.running_var` is missing"), "{err}");
    tensors.insert("1.running_var".into(), var);
    tensors.insert(
        "extra".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors.clone().into_iter().collect(), &path).unwrap();
    let err = vgg.load_safetensors(&path).unwrap_err().to_string();
    assert!(err.contains("`extra` is not part of the network"), "{err}");
    tensors.remove("extra");
    let counter = "1.num_batches_tracked".to_string();
    tensors.insert(counter, Tensor::new(2f32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&tensors.into_iter().collect(), &path).unwrap();
    let err = vgg.load_safetensors(&path).unwrap_err().to_string();
    assert!(
        err.contains("`1.num_batches_tracked` is F32 [], the network needs I64 []"),
        "{err}"
    );
    assert_eq!(
        eval(&vgg, &x).to_vec2::<f32>().unwrap(),
        unchanged,
        "a failed load changed the network"
    );
}

#[test]
fn formats_choose_the_files() {
    let case = &cases()[4];
    let (network, _) = trained(case);
    for (name, files) in [
        ("pytorch", vec![ARCH_FILE, MODULE_FILE]),
        ("safetensors", vec![ARCH_FILE, WEIGHTS_FILE]),
        ("all", vec![ARCH_FILE, MODULE_FILE, WEIGHTS_FILE]),
    ] {
        let format: Format = name.parse().unwrap();
        assert_eq!(format.to_string(), name);
        let dir = tempfile::tempdir().unwrap();
        let written = export(&network, dir.path(), format).unwrap();
        let mut present: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        let mut expected: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(present, expected, "{name}");
        assert_eq!(written.len(), files.len(), "{name}");
    }
    let err = "onnx".parse::<Format>().unwrap_err();
    assert!(err.contains("use pytorch, safetensors or all"), "{err}");
}

/// The python to run PyTorch with, or why there is none.
fn torch_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("NAS_TORCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            let venv = Path::new(&home).join(".cache/torch-cpu-venv/bin/python");
            if !venv.exists() {
                return Err(format!("{} does not exist", venv.display()));
            }
            venv
        }
    };
    let ok = Command::new(&python)
        .args(["-c", "import torch"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(format!("{} cannot import torch", python.display()))
    }
}

#[test]
fn pytorch_reproduces_our_forward_pass() {
    let python = match torch_python() {
        Ok(p) => p,
        Err(why) => {
            let required = std::env::var("NAS_REQUIRE_INTEGRATION").is_ok_and(|v| v == "1")
                && std::env::var_os("NAS_TORCH_PYTHON").is_some();
            assert!(!required, "no PyTorch: {why}");
            eprintln!("skipped: no PyTorch ({why}); set NAS_TORCH_PYTHON");
            return;
        }
    };
    let root = tempfile::tempdir().unwrap();
    let cases = cases();
    let exported: Vec<_> = cases
        .iter()
        .map(|case| {
            let dir = root.path().join(case.name);
            let (network, x) = export_case(case, &dir);
            (dir, eval(&network, &x))
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/torch_export_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(exported.iter().map(|(dir, _)| dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let mut fixture = json!({"command": "scripts/export_fixture.sh", "cases": {}});
    for (case, (dir, ours)) in cases.iter().zip(&exported) {
        let result: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("output.json")).unwrap())
                .unwrap();
        compare(case.name, ours, &torch_output(&result));
        fixture["torch"] = result["torch"].clone();
        fixture["cases"][case.name] = json!({
            "output": result["output"],
            "output_shape": result["output_shape"],
            "state_dict": result["state_dict"],
        });
    }
    if let Some(path) = std::env::var_os("NAS_EXPORT_FIXTURE") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&fixture).unwrap() + "\n",
        )
        .unwrap();
        println!("wrote {}", Path::new(&path).display());
    }
}
