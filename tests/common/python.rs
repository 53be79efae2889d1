//! The tests' Python: a virtual environment at `target/pyenv` into which the
//! packages a test needs are installed from PyPI when they are not there
//! yet. Setting it up fails the test when Python or pip does; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual environment's Python, with `packages` installed (pip
/// requirement strings) so that `import` (a Python statement) runs. Holds a
/// lock on `target/pyenv.lock` while it checks and installs.
pub fn python_with(packages: &[&str], import: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR lies inside the target folder");
    let venv = target.join("pyenv");
    // Test binaries run side by side (scripts/test runs two at a time): one
    // at a time creates the environment and installs into it.
    let lock =
        std::fs::File::create(target.join("pyenv.lock")).expect("the target folder is writable");
    lock.lock()
        .expect("the Python environment's lock file can be locked");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if !python.exists() {
        let venv_arg = venv.to_string_lossy();
        run_checked(
            "python3",
            &["-m", "venv", &venv_arg],
            "create the Python virtual environment",
        );
    }
    let python_arg = python.to_string_lossy();
    let importable = Command::new(&python)
        .args(["-c", import])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend_from_slice(packages);
        run_checked(
            &python_arg,
            &args,
            &format!("install {} from PyPI", packages.join(", ")),
        );
        run_checked(
            &python_arg,
            &["-c", import],
            &format!("run `{import}` after installing"),
        );
    }
    python
}

/// Runs `program` with `args`, failing the test with its output if it fails.
pub fn run_checked(program: &str, args: &[&str], purpose: &str) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot {purpose}: running `{program}` failed: {e}; install Python 3 with venv and pip")
    });
    assert!(
        output.status.success(),
        "cannot {purpose}: `{program} {}` exited with {}:\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the script `tests/fixtures/<script>` with `python` on `args` and
/// returns the JSON it prints; fails the test when the script fails.
pub fn fixture_json(python: &Path, script: &str, args: &[&Path]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed something that is not JSON ({e}):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
