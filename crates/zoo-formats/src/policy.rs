//! Which imports a pickle may name: the allow-list behind every pickle verdict.
//!
//! A global on [`SAFE`] is `safe`. A global in a module on [`DANGEROUS_MODULES`], or named in
//! [`DANGEROUS`], is `dangerous`: importing it is enough to run code or touch the system.
//! Every other global is `suspicious`: it is not known to be harmful, but loading it would
//! import code zoo has not vetted, and zoo never does.

use std::fmt;

use serde::Serialize;

use crate::pickle::Import;

/// The verdict on one import, or on a whole file (the worst of its parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Safe,
    Suspicious,
    Dangerous,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Safe => "safe",
            Verdict::Suspicious => "suspicious",
            Verdict::Dangerous => "dangerous",
        })
    }
}

/// Globals that plain PyTorch state dicts (and NumPy arrays inside them) are made of.
pub const SAFE: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"),
    ("torch", "FloatStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
    ("torch", "UntypedStorage"),
    ("torch", "float32"),
    ("torch", "float64"),
    ("torch", "float16"),
    ("torch", "bfloat16"),
    ("torch", "int64"),
    ("torch", "int32"),
    ("torch", "int16"),
    ("torch", "int8"),
    ("torch", "uint8"),
    ("torch", "bool"),
    ("torch", "device"),
    ("torch.nn.parameter", "Parameter"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
];

/// Modules any of whose names is dangerous to import: they run processes, evaluate code,
/// load further pickles, open sockets or files, or reach arbitrary attributes.
pub const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "posixpath",
    "ntpath",
    "subprocess",
    "sys",
    "socket",
    "shutil",
    "runpy",
    "importlib",
    "imp",
    "pty",
    "webbrowser",
    "code",
    "codeop",
    "ctypes",
    "commands",
    "popen2",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "marshal",
    "types",
    "bdb",
    "pdb",
    "timeit",
    "asyncio",
    "multiprocessing",
    "signal",
    "http",
    "httplib",
    "urllib",
    "urllib2",
    "requests",
    "aiohttp",
    "ftplib",
    "smtplib",
    "telnetlib",
    "tempfile",
    "pathlib",
    "io",
    "_io",
    "zipimport",
    "pkgutil",
    "site",
    "platform",
    "venv",
    "ensurepip",
    "pip",
    "setuptools",
    "distutils",
    "torch.hub",
    "torch.jit",
    "torch.serialization",
    "torch._inductor",
    "torch.utils.cpp_extension",
];

/// Single names that run code or reach arbitrary attributes.
pub const DANGEROUS: &[(&str, &str)] = &[
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "execfile"),
    ("builtins", "compile"),
    ("builtins", "open"),
    ("builtins", "__import__"),
    ("builtins", "getattr"),
    ("builtins", "setattr"),
    ("builtins", "delattr"),
    ("builtins", "globals"),
    ("builtins", "locals"),
    ("builtins", "vars"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("builtins", "apply"),
    ("builtins", "file"),
    ("builtins", "reload"),
    ("builtins", "help"),
    ("builtins", "exit"),
    ("builtins", "quit"),
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("operator", "getitem"),
    ("functools", "partial"),
    ("functools", "reduce"),
    ("copyreg", "_reconstructor"),
    ("torch", "load"),
    ("torch", "save"),
    ("numpy", "load"),
    ("numpy", "loads"),
    ("numpy", "fromfile"),
    ("numpy.lib.npyio", "load"),
];

/// The verdict on importing `import`.
pub fn verdict(import: &Import) -> Verdict {
    let (module, name) = (import.module.as_str(), import.name.as_str());
    // Python 2 spelled builtins `__builtin__`.
    let module = if module == "__builtin__" {
        "builtins"
    } else {
        module
    };
    if SAFE.contains(&(module, name)) {
        return Verdict::Safe;
    }
    let top = |m: &str| {
        DANGEROUS_MODULES
            .iter()
            .any(|d| m == *d || m.strip_prefix(d).is_some_and(|rest| rest.starts_with('.')))
    };
    if top(module) || DANGEROUS.contains(&(module, name)) {
        return Verdict::Dangerous;
    }
    // Names that are not identifiers (`os.system` smuggled as one name, dotted attribute
    // chains, empty strings) are how scanners get fooled: treat them as dangerous.
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !ident(name) || !module.split('.').all(ident) {
        return Verdict::Dangerous;
    }
    Verdict::Suspicious
}
