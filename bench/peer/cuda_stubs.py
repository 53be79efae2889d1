"""Stub CUDA libraries so that PyPI's Linux x86_64 torch wheel runs on the CPU
without the NVIDIA wheels it declares.

PyPI has no CPU-only torch for Linux x86_64: its wheel links (DT_NEEDED) the
CUDA runtime, cuBLAS, cuDNN, NCCL and friends, which come as some 3 GB of
`nvidia-*` wheels (plus 1 GB of Triton), and `import torch` fails without
them. This script lets the wheel load without them: for every library that a
torch shared object needs but that cannot be found, it compiles a small
stand-in with the same soname and symbol versions, defining every symbol torch
takes from it that nothing else defines. Each stub function returns 100
(`cudaErrorNoDevice` for the CUDA runtime, an error code for the others), and
the error-string functions return a message, so torch sees a machine without a
GPU: `torch.cuda.is_available()` is False and every CPU operator works, since
none of them calls into CUDA.

Usage: python cuda_stubs.py TORCH_DIR   (the installed `torch` package folder)

The stubs go into TORCH_DIR/lib, which is on the wheel's RPATH ($ORIGIN).
Needs `readelf` and `ldd` (binutils, libc) and a C compiler (`cc`).
"""

import glob
import os
import re
import subprocess
import sys
import tempfile

#: Value every stub function returns: `cudaErrorNoDevice` in the CUDA runtime.
STUB_RESULT = 100
#: Stub functions that return a string rather than a status.
STRING_FUNCTION = re.compile(r"(Error|Status|Result)(String|Name)$")


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def needed(path):
    """The sonames `path` links (its DT_NEEDED entries)."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run("readelf", "-d", "-W", path))


def version_needs(path):
    """{soname: [version names]} that `path` requires of its libraries."""
    needs, current = {}, None
    for line in run("readelf", "-V", "-W", path).splitlines():
        file = re.search(r"File: (\S+)", line)
        name = re.search(r"Name: (\S+)", line)
        if file:
            current = file.group(1)
            needs.setdefault(current, [])
        elif name and current is not None:
            needs[current].append(name.group(1))
    return needs


def dynamic_symbols(path):
    """(defined, undefined) dynamic symbols of `path`: defined as a set of
    names; undefined as {name: (type, version or None)}, weak ones left out."""
    defined, undefined = set(), {}
    for line in run("readelf", "--dyn-syms", "-W", path).splitlines():
        fields = line.split()
        if len(fields) < 8 or not fields[0].endswith(":"):
            continue
        kind, binding, section, symbol = fields[3], fields[4], fields[6], fields[7]
        name, _, version = symbol.partition("@")
        version = version.lstrip("@") or None
        if section != "UND":
            defined.add(name)
        elif binding == "GLOBAL" and name:
            undefined[name] = (kind, version)
    return defined, undefined


def resolved_libraries(path):
    """Paths of the libraries the loader finds for `path`, and the sonames it
    does not find."""
    found, missing = [], set()
    for line in run("ldd", path).splitlines():
        match = re.match(r"\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", line)
        if not match:
            continue
        if match.group(2) == "not found":
            missing.add(match.group(1))
        elif os.path.exists(match.group(2)):
            found.append(match.group(2))
    return found, missing


def stub_source(symbols):
    """C source defining `symbols` ({name: type}) as stubs."""
    lines = [f'static const char message[] = "CUDA is not available: this torch runs on stub CUDA libraries";']
    for i, (name, kind) in enumerate(sorted(symbols.items())):
        label = f'__asm__("{name}")'
        if kind == "OBJECT":
            lines.append(f"char object{i}[256] {label};")
        elif STRING_FUNCTION.search(name):
            lines.append(f"const char *function{i}(void) {label};")
            lines.append(f"const char *function{i}(void) {{ return message; }}")
        else:
            lines.append(f"long function{i}(void) {label};")
            lines.append(f"long function{i}(void) {{ return {STUB_RESULT}; }}")
    return "\n".join(lines) + "\n"


def version_script(versions, symbols_by_version, unversioned):
    """A linker version script with one node per version; unversioned symbols
    go to the first node (an unversioned reference binds to any version)."""
    nodes = []
    for i, version in enumerate(versions or ["STUB"]):
        names = sorted(symbols_by_version.get(version, set()) | (unversioned if i == 0 else set()))
        body = "".join(f"    {name};\n" for name in names)
        local = "  local: *;\n" if i == 0 else ""
        nodes.append(f"{version} {{\n  global:\n{body}{local}}};\n")
    return "".join(nodes)


def main(torch_dir):
    lib_dir = os.path.join(torch_dir, "lib")
    objects = sorted(glob.glob(os.path.join(lib_dir, "*.so*")) + glob.glob(os.path.join(torch_dir, "_C*.so")))
    missing, present, undefined, versions = set(), set(objects), {}, {}
    for path in objects:
        found, lost = resolved_libraries(path)
        missing |= lost
        present.update(found)
        for soname, names in version_needs(path).items():
            versions.setdefault(soname, set()).update(names)
        undefined.update(dynamic_symbols(path)[1])
    if not missing:
        print("cuda_stubs: every library torch links is present; no stub needed", file=sys.stderr)
        return
    # The Python interpreter defines the C API that torch's extension uses.
    found, _ = resolved_libraries(sys.executable)
    present.update([sys.executable, *found])
    defined = set()
    for path in present:
        defined |= dynamic_symbols(path)[0]
    unresolved = {name: info for name, info in undefined.items() if name not in defined}
    with tempfile.TemporaryDirectory() as work:
        for soname in sorted(missing):
            own_versions = sorted(versions.get(soname, ()))
            by_version = {}
            for name, (_, version) in unresolved.items():
                if version in own_versions:
                    by_version.setdefault(version, set()).add(name)
            unversioned = {name for name, (_, version) in unresolved.items() if version is None}
            symbols = {name: kind for name, (kind, version) in unresolved.items() if version is None or version in own_versions}
            source = os.path.join(work, soname + ".c")
            script = os.path.join(work, soname + ".map")
            with open(source, "w") as f:
                f.write(stub_source(symbols))
            with open(script, "w") as f:
                f.write(version_script(own_versions, by_version, unversioned))
            run("cc", "-shared", "-fPIC", "-O1", "-o", os.path.join(lib_dir, soname),
                f"-Wl,-soname,{soname}", f"-Wl,--version-script={script}", source)
            print(f"cuda_stubs: {soname}: {len(symbols)} stub symbols", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: cuda_stubs.py TORCH_DIR")
    main(sys.argv[1])
