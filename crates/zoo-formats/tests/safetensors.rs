//! The safetensors validator: one broken file per rule, round trips, and agreement with the
//! reference implementation (the `safetensors` crate) as an oracle.

use std::borrow::Cow;

use proptest::prelude::*;
use zoo_formats::Dtype;
use zoo_formats::safetensors::{self as st, SafetensorsError, TensorData};

/// A file from a header string and a data section.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn valid() -> Vec<u8> {
    file(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2,2],"data_offsets":[8,12]}}"#,
        &[0u8; 12],
    )
}

#[test]
fn accepts_a_valid_file() {
    let h = st::validate(&valid()).unwrap();
    assert_eq!(h.tensors.len(), 2);
    assert_eq!(h.tensors[0].name, "a");
    assert_eq!(h.tensors[1].shape, vec![2, 2]);
    assert_eq!(h.data_start, 8 + h.data_start - 8);
}

#[test]
fn too_short() {
    assert_eq!(
        st::validate(&[1, 2, 3]),
        Err(SafetensorsError::TooShort { len: 3 })
    );
}

#[test]
fn header_too_large() {
    let mut f = (st::MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
    f.extend_from_slice(b"{}");
    assert!(matches!(
        st::validate(&f),
        Err(SafetensorsError::HeaderTooLarge { .. })
    ));
}

#[test]
fn header_out_of_bounds() {
    let mut f = 100u64.to_le_bytes().to_vec();
    f.extend_from_slice(b"{}");
    assert!(matches!(
        st::validate(&f),
        Err(SafetensorsError::HeaderOutOfBounds {
            header_len: 100,
            ..
        })
    ));
}

#[test]
fn header_not_utf8() {
    let f = file("{\"\u{0}", &[]);
    let mut f = f;
    f[9] = 0xff;
    assert_eq!(st::validate(&f), Err(SafetensorsError::HeaderNotUtf8));
}

#[test]
fn header_not_an_object() {
    for h in ["[1,2]", "\"x\"", "{\"a\":", "{} {}", "nul"] {
        assert!(
            matches!(
                st::validate(&file(h, &[])),
                Err(SafetensorsError::HeaderNotJsonObject { .. })
            ),
            "{h}"
        );
    }
}

#[test]
fn duplicate_keys() {
    let h = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    assert_eq!(
        st::validate(&file(h, &[0, 0])),
        Err(SafetensorsError::DuplicateKey { key: "a".into() })
    );
}

#[test]
fn metadata_must_map_strings_to_strings() {
    for h in [
        r#"{"__metadata__":{"k":1}}"#,
        r#"{"__metadata__":["x"]}"#,
        r#"{"__metadata__":{"k":null}}"#,
    ] {
        assert!(
            matches!(
                st::validate(&file(h, &[])),
                Err(SafetensorsError::BadMetadata { .. })
            ),
            "{h}"
        );
    }
    let h = st::validate(&file(r#"{"__metadata__":{"format":"pt"}}"#, &[])).unwrap();
    assert_eq!(h.metadata.unwrap()["format"], "pt");
}

#[test]
fn unknown_dtype() {
    let h = r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    assert!(matches!(
        st::validate(&file(h, &[0; 16])),
        Err(SafetensorsError::UnknownDtype { .. })
    ));
}

#[test]
fn malformed_entries() {
    for h in [
        r#"{"a":{"dtype":"U8","shape":[1]}}"#,
        r#"{"a":{"dtype":"U8","data_offsets":[0,1]}}"#,
        r#"{"a":{"shape":[1],"data_offsets":[0,1]}}"#,
        r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
        r#"{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#,
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}"#,
        r#"{"a":7}"#,
    ] {
        assert!(
            matches!(
                st::validate(&file(h, &[0])),
                Err(SafetensorsError::BadEntry { .. })
            ),
            "{h}"
        );
    }
}

#[test]
fn size_overflow() {
    let h = r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    assert!(matches!(
        st::validate(&file(h, &[0; 8])),
        Err(SafetensorsError::SizeOverflow { .. })
    ));
}

#[test]
fn size_mismatch() {
    let h = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    assert!(matches!(
        st::validate(&file(h, &[0; 8])),
        Err(SafetensorsError::SizeMismatch { expected: 12, .. })
    ));
}

#[test]
fn reversed_offsets() {
    let h = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#;
    assert!(matches!(
        st::validate(&file(h, &[0; 4])),
        Err(SafetensorsError::ReversedOffsets { .. })
    ));
}

#[test]
fn overlapping_and_gapped_ranges() {
    let overlap = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
    assert!(matches!(
        st::validate(&file(overlap, &[0; 6])),
        Err(SafetensorsError::NotContiguous { .. })
    ));
    let gap = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#;
    assert!(matches!(
        st::validate(&file(gap, &[0; 6])),
        Err(SafetensorsError::NotContiguous { .. })
    ));
    let late_start = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#;
    assert!(matches!(
        st::validate(&file(late_start, &[0; 3])),
        Err(SafetensorsError::NotContiguous { .. })
    ));
}

#[test]
fn out_of_range() {
    let h = r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#;
    assert!(matches!(
        st::validate(&file(h, &[0; 4])),
        Err(SafetensorsError::OutOfRange {
            end: 8,
            data_len: 4
        })
    ));
}

#[test]
fn trailing_bytes() {
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
    assert_eq!(
        st::validate(&file(h, &[0; 5])),
        Err(SafetensorsError::TrailingBytes { trailing: 3 })
    );
    assert_eq!(
        st::validate(&file("{}", &[0])),
        Err(SafetensorsError::TrailingBytes { trailing: 1 })
    );
}

#[test]
fn errors_name_the_tensor() {
    let h = r#"{"encoder.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let msg = st::validate(&file(h, &[0; 8])).unwrap_err().to_string();
    assert!(msg.contains("encoder.weight"), "{msg}");
}

#[test]
fn writer_refuses_bad_tensors() {
    let t = |name: &str, len| TensorData {
        name: name.into(),
        dtype: Dtype::F32,
        shape: vec![2],
        data: Cow::Owned(vec![0; len]),
    };
    assert!(st::to_vec(&[t("a", 7)], None).is_err());
    assert!(st::to_vec(&[t("a", 8), t("a", 8)], None).is_err());
    assert!(st::to_vec(&[t("__metadata__", 8)], None).is_err());
}

fn arb_tensor() -> impl Strategy<Value = (Dtype, Vec<usize>)> {
    (
        prop::sample::select(Dtype::ALL.to_vec()),
        prop::collection::vec(0usize..5, 0..4),
    )
}

proptest! {
    #[test]
    fn round_trip(tensors in prop::collection::btree_map("[a-z.]{1,12}", arb_tensor(), 0..8),
                  meta in prop::collection::btree_map("[a-z]{1,6}", "[ -~]{0,10}", 0..3),
                  seed in any::<u8>()) {
        let data: Vec<TensorData<'_>> = tensors.iter().map(|(name, (dtype, shape))| {
            let n = shape.iter().product::<usize>() * dtype.size();
            TensorData { name: name.clone(), dtype: *dtype, shape: shape.clone(),
                         data: Cow::Owned((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()) }
        }).collect();
        let meta = if meta.is_empty() { None } else { Some(meta) };
        let bytes = st::to_vec(&data, meta.as_ref()).unwrap();
        let header = st::validate(&bytes).unwrap();
        prop_assert_eq!(header.tensors.len(), data.len());
        prop_assert_eq!(&header.metadata, &meta);
        for t in &data {
            let info = header.tensors.iter().find(|i| i.name == t.name).unwrap();
            prop_assert_eq!(info.dtype, t.dtype);
            prop_assert_eq!(&info.shape, &t.shape);
            prop_assert_eq!(header.tensor_bytes(&bytes, info), &t.data[..]);
        }
        // The reference implementation reads what we write.
        let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        prop_assert_eq!(reference.len(), data.len());
    }

    /// Oracle: whatever our validator accepts, the reference implementation accepts too.
    #[test]
    fn stricter_than_the_reference(header in r#"\{("[a-c]":\{"dtype":"(U8|F32|I64|X)","shape":\[[0-4](,[0-4])?\],"data_offsets":\[[0-9]{1,2},[0-9]{1,2}\]\},?){0,3}\}"#,
                                   len in 0usize..64) {
        let f = file(&header, &vec![0u8; len]);
        if st::validate(&f).is_ok() {
            prop_assert!(safetensors::SafeTensors::deserialize(&f).is_ok(), "{}", header);
        }
    }

    /// Mutating bytes of a valid file never panics.
    #[test]
    fn mutations_never_panic(pos in 0usize..200, byte in any::<u8>()) {
        let mut f = valid();
        let i = pos % f.len();
        f[i] = byte;
        let _ = st::validate(&f);
    }
}
