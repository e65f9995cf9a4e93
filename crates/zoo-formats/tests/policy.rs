//! The import allow-list.

use zoo_formats::pickle::Import;
use zoo_formats::policy::{Verdict, verdict};

fn v(module: &str, name: &str) -> Verdict {
    verdict(&Import {
        module: module.into(),
        name: name.into(),
    })
}

#[test]
fn state_dict_globals_are_safe() {
    for (m, n) in [
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch", "FloatStorage"),
        ("torch", "BFloat16Storage"),
        ("torch", "BoolStorage"),
    ] {
        assert_eq!(v(m, n), Verdict::Safe, "{m}.{n}");
    }
}

#[test]
fn code_execution_is_dangerous() {
    for (m, n) in [
        ("os", "system"),
        ("posix", "system"),
        ("nt", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("__builtin__", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("importlib", "import_module"),
        ("runpy", "run_path"),
        ("os.path", "join"),
        ("operator", "attrgetter"),
        ("torch", "load"),
        ("pickle", "loads"),
        ("webbrowser", "open"),
        ("socket", "create_connection"),
    ] {
        assert_eq!(v(m, n), Verdict::Dangerous, "{m}.{n}");
    }
}

#[test]
fn odd_names_are_dangerous() {
    assert_eq!(v("os system", "x"), Verdict::Dangerous);
    assert_eq!(v("builtins", "getattr.__call__"), Verdict::Dangerous);
    assert_eq!(v("", "x"), Verdict::Dangerous);
}

#[test]
fn anything_else_is_suspicious() {
    assert_eq!(v("torch.nn.modules.linear", "Linear"), Verdict::Suspicious);
    assert_eq!(v("__main__", "MyModel"), Verdict::Suspicious);
    assert_eq!(v("builtins", "print"), Verdict::Suspicious);
    // A module that only starts like a dangerous one is not that module.
    assert_eq!(v("osmosis", "Thing"), Verdict::Suspicious);
}

/// Found by fuzzing (fuzz/fuzz_targets/pickle.rs): bytes that start like a zip but read as a
/// pickle. `pickle.load` would run them, so the scanner reports their imports too.
#[test]
fn fuzz_zip_pickle_polyglots_report_the_pickle_imports() {
    let mut bytes = b"PK\x03\x04os\n".to_vec();
    bytes.extend_from_slice(b"0cposix\nsystem\n(S'touch /tmp/x'\ntR.");
    let report = zoo_formats::scan::scan_bytes("model.bin", &bytes);
    assert_eq!(report.kind, zoo_formats::scan::Kind::Zip);
    assert!(
        report
            .imports
            .iter()
            .any(|i| i.module == "posix" && i.verdict == Verdict::Dangerous),
        "{report:?}"
    );
    assert_eq!(report.verdict, zoo_formats::scan::FileVerdict::Dangerous);
}
