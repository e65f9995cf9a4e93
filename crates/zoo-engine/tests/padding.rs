//! Issue 11: a sentence's token states do not depend on how far its batch is padded (the
//! frozen text prefix of `zoo finetune` computes them in one batch and trains on them in
//! another), on the real all-MiniLM-L6-v2.

use burn::prelude::{Int, Tensor};
use burn::tensor::TensorData;
use zoo_engine::Weights;
use zoo_engine::bert::{Bert, BertConfig};

#[test]
fn token_states_do_not_depend_on_the_batch_padding() {
    let dir = zoo_testkit::real_fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let mapped = zoo_checkpoint::Mapped::open(dir.join("model.safetensors")).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded(&loaded, &device);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let bert = Bert::load(&w, &BertConfig::from_json(&cfg).unwrap()).unwrap();
    // The first sentence's states (10 tokens) after `layers` layers, in a batch of sentences
    // of `lens` tokens padded to `t`.
    let first = |lens: &[usize], t: usize, layers: usize| -> Vec<u32> {
        let b = lens.len();
        let mut ids = vec![0i64; b * t];
        let mut mask = vec![0f32; b * t];
        for (r, &l) in lens.iter().enumerate() {
            for j in 0..l {
                ids[r * t + j] = 1000 + ((r * 7 + j * 13) % 5000) as i64;
                mask[r * t + j] = 1.0;
            }
        }
        let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [b, t]), &device);
        let mask: Tensor<2> = Tensor::from_data(TensorData::new(mask, [b, t]), &device);
        let x = bert.embed(ids.clone(), ids.zeros_like(), mask.clone());
        let y = bert.run_layers(x, mask, 0..layers);
        let h = y.dims()[2];
        let v = y.into_data().try_to_vec::<f32>().unwrap();
        v[..lens[0] * h].iter().map(|x| x.to_bits()).collect()
    };
    for layers in [1, 3, bert.layers()] {
        let alone = first(&[10], 10, layers);
        for (lens, t) in [
            (vec![10, 20], 20),
            (vec![10, 5], 10),
            (vec![10, 30, 3], 40),
            (vec![10], 128),
        ] {
            assert!(
                first(&lens, t, layers) == alone,
                "{layers} layers: a batch of {lens:?} padded to {t} changes the first sentence"
            );
        }
    }
}
