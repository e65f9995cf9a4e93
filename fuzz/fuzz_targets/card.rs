//! Model cards and configs never panic, and a parsed card survives a render round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(card) = zoo_card::ModelCard::parse(text) {
        let _ = card.results();
        let _ = card.base_model();
        let again = zoo_card::ModelCard::parse(&card.render()).expect("rendered card must parse");
        assert_eq!(again.metadata.len(), card.metadata.len());
    }
    if let Ok(config) = zoo_card::Config::parse(text) {
        let _ = config.label_names();
        let _ = config.pretrained_cfg();
    }
});
