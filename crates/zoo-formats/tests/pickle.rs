//! The inert pickle reader: values, limits and errors.

use zoo_formats::pickle::{self, Import, Limits, Node, PickleError};

#[test]
fn reads_protocol_2_values() {
    // {'a': [1, 2.5, 'x', True, None], 'b': (b'hi',)} written by Python 3, protocol 2.
    let bytes = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03\x88Nex\x01\x00\x00\x00b";
    // Truncated on purpose after the second key: must be an error, not a panic.
    let err = pickle::read(bytes).unwrap_err().0;
    assert!(
        matches!(
            err,
            PickleError::UnknownOpcode { .. } | PickleError::Truncated { .. }
        ),
        "{err}"
    );

    let ok = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03\x88Neu.";
    let p = pickle::read(ok).unwrap();
    let Node::Dict(items) = p.node(p.root) else {
        panic!("not a dict")
    };
    assert_eq!(items.len(), 1);
    assert_eq!(p.str(items[0].0), Some("a"));
    let list = p.seq(items[0].1).unwrap();
    assert_eq!(p.node(list[0]), &Node::Int(1));
    assert_eq!(p.node(list[1]), &Node::Float(2.5));
    assert_eq!(p.str(list[2]), Some("x"));
    assert_eq!(p.node(list[3]), &Node::Bool(true));
    assert_eq!(p.node(list[4]), &Node::None);
    assert_eq!(p.len, ok.len());
}

#[test]
fn globals_are_recorded_not_imported() {
    let p = pickle::read(b"cos\nsystem\n(S'echo hi'\ntR.").unwrap();
    assert_eq!(
        p.imports,
        vec![Import {
            module: "os".into(),
            name: "system".into()
        }]
    );
    let Node::Call { callable, args, .. } = p.node(p.root) else {
        panic!("not a call")
    };
    assert_eq!(p.global(*callable), Some(("os", "system")));
    assert_eq!(p.str(p.seq(*args).unwrap()[0]), Some("echo hi"));
}

#[test]
fn big_integers() {
    // LONG1 with 10 bytes: PyTorch's legacy magic number.
    let p = pickle::read(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    assert!(matches!(p.node(p.root), Node::BigInt(b) if b.len() == 10));
    let p = pickle::read(b"\x80\x02\x8a\x02\xe9\x03.").unwrap();
    assert_eq!(p.node(p.root), &Node::Int(1001));
    let p = pickle::read(b"\x80\x02\x8a\x01\xff.").unwrap();
    assert_eq!(p.node(p.root), &Node::Int(-1));
}

#[test]
fn lengths_beyond_the_input_are_refused_before_allocating() {
    // BINUNICODE8 claiming 2^62 bytes.
    let mut b = b"\x80\x04\x8d".to_vec();
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let err = pickle::read(&b).unwrap_err().0;
    assert!(
        matches!(
            err,
            PickleError::Limit { .. } | PickleError::Truncated { .. }
        ),
        "{err}"
    );
    // BINBYTES claiming 4 GiB with 3 bytes present.
    let err = pickle::read(b"\x80\x03B\xff\xff\xff\xffabc").unwrap_err().0;
    assert!(
        matches!(
            err,
            PickleError::Limit {
                what: "string length",
                ..
            }
        ),
        "{err}"
    );
    let err = pickle::read(b"\x80\x03B\x00\x01\x00\x00abc").unwrap_err().0;
    assert!(matches!(err, PickleError::Truncated { .. }), "{err}");
}

#[test]
fn limits_bound_marks_stack_and_memo() {
    let limits = Limits {
        max_marks: 10,
        max_stack: 10,
        max_memo: 4,
        ..Limits::default()
    };
    let deep = [b"\x80\x02".to_vec(), vec![b'('; 50], b".".to_vec()].concat();
    assert!(matches!(
        pickle::read_with(&deep, limits).unwrap_err().0,
        PickleError::Limit {
            what: "MARK depth",
            ..
        }
    ));
    let wide = [b"\x80\x02".to_vec(), vec![b'N'; 50], b".".to_vec()].concat();
    assert!(matches!(
        pickle::read_with(&wide, limits).unwrap_err().0,
        PickleError::Limit {
            what: "stack size",
            ..
        }
    ));
    let memo = [
        b"\x80\x02N".to_vec(),
        (0u8..10).flat_map(|i| [b'q', i]).collect(),
        b".".to_vec(),
    ]
    .concat();
    assert!(matches!(
        pickle::read_with(&memo, limits).unwrap_err().0,
        PickleError::Limit {
            what: "memo size",
            ..
        }
    ));
}

#[test]
fn a_million_nested_tuples_is_an_error_not_a_stack_overflow() {
    // MARK MARK MARK ... TUPLE TUPLE TUPLE: deep nesting bounded by the MARK limit.
    let n = 1_000_000;
    let b = [
        b"\x80\x02".to_vec(),
        vec![b'('; n],
        vec![b't'; n],
        b".".to_vec(),
    ]
    .concat();
    assert!(pickle::read(&b).is_err());
    // TUPLE1 chains need no MARK: the arena keeps them flat, and dropping is iterative.
    let b = [b"\x80\x02N".to_vec(), vec![0x85; n], b".".to_vec()].concat();
    let p = pickle::read(&b).unwrap();
    // The tuples, and the three shared constants.
    assert_eq!(p.nodes.len(), n + 3);
}

/// Issue 16: `b'\x80\x02' + b'N0' * 16_000_000 + b'N.'` cost 2.3 GB and 10 s to scan: every
/// `None` was a new 96-byte node. Constants are shared now, and the arena is bounded by the
/// input's length and `Limits::max_nodes`: a pickle of fresh values stops at the limit.
#[test]
fn hostile_pickles_cost_memory_bounded_by_their_length_and_the_limits_issue_16() {
    let n = 16_000_000;
    let mut b = b"\x80\x02".to_vec();
    b.reserve(2 * n + 2);
    for _ in 0..n {
        b.extend_from_slice(b"N0");
    }
    b.extend_from_slice(b"N.");
    let p = pickle::read(&b).unwrap();
    assert_eq!(
        p.nodes.len(),
        3,
        "pushing and popping None allocates nothing"
    );
    // Fresh integers: one node each, until the limit.
    let mut b = b"\x80\x02".to_vec();
    for i in 0..3_000_000u32 {
        b.push(b'J');
        b.extend_from_slice(&i.to_le_bytes());
        b.push(b'0');
    }
    b.extend_from_slice(b"N.");
    let (e, _) = pickle::read(&b).unwrap_err();
    assert!(e.to_string().contains("number of values"), "{e}");
    // The arena never holds more nodes than the input has bytes.
    let limits = pickle::Limits {
        max_nodes: usize::MAX,
        ..pickle::Limits::default()
    };
    let small = b"\x80\x02K\x01K\x02\x86.";
    let p = pickle::read_with(small, limits).unwrap();
    assert!(p.nodes.len() <= small.len() + 3);
}

#[test]
fn malformed_streams_are_errors() {
    for (bytes, what) in [
        (&b"\x80\x02"[..], "no STOP"),
        (b"\x80\x09N.", "protocol 9"),
        (b"\x80\x02R.", "REDUCE on an empty stack"),
        (b"\x80\x02t.", "TUPLE without MARK"),
        (b"\x80\x02h\x05.", "memo key never stored"),
        (b"\x80\x02(N\x93.", "STACK_GLOBAL with non-strings"),
        (b"\x80\x02\x82\x01.", "extension registry"),
        (b"\x80\x02\xff.", "unknown opcode"),
        (b"\x80\x02NNs.", "SETITEM on None"),
    ] {
        assert!(pickle::read(bytes).is_err(), "{what}");
    }
}

#[test]
fn errors_keep_the_imports_seen_so_far() {
    let (err, imports) = pickle::read(b"\x80\x02cbuiltins\neval\n\xff").unwrap_err();
    assert!(matches!(
        err,
        PickleError::UnknownOpcode { opcode: 0xff, .. }
    ));
    assert_eq!(
        imports,
        vec![Import {
            module: "builtins".into(),
            name: "eval".into()
        }]
    );
}

#[test]
fn memo_shares_mutable_objects() {
    // l = []; memo[0] = l; l.append(1); (l, l)
    let p = pickle::read(b"\x80\x02]q\x00K\x01ah\x00\x86.").unwrap();
    let t = p.seq(p.root).unwrap();
    assert_eq!(t[0], t[1]);
    assert_eq!(p.seq(t[0]).unwrap().len(), 1);
}
