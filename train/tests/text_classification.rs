//! End to end text classification: keel-data's `TextVectorization` (host strings to token
//! ids) -> `Embedding(mask_zero)` + `GlobalAveragePooling1D` + `Dense(sigmoid)` trained by
//! `fit` on hand-written positive / negative sentences.

use keel_data::preprocessing::TextVectorization;
use keel_nn::{Activation, Dense, Embedding, GlobalAveragePooling1D, Loss};
use keel_optim::Adam;
use keel_tensor::Tensor;
use keel_train::{Fit, MetricSpec, Sequential};

const POSITIVE: [&str; 20] = [
    "I loved this movie!",
    "What a great film.",
    "Wonderful acting and a great story",
    "An excellent, moving picture",
    "I really enjoyed it",
    "Brilliant and beautiful.",
    "The best film of the year!",
    "A delightful, charming comedy",
    "Superb performances, loved it",
    "Great fun from start to finish",
    "I would happily watch it again",
    "A wonderful surprise",
    "Beautiful music and great actors",
    "Truly excellent work",
    "Amazing, I enjoyed every minute",
    "Charming and funny",
    "A masterpiece, simply brilliant",
    "Lovely story, happy ending",
    "Fantastic! Highly recommended.",
    "Good film, good cast, good fun",
];

const NEGATIVE: [&str; 20] = [
    "I hated this movie.",
    "What a terrible film!",
    "Awful acting and a boring story",
    "A dull, tedious picture",
    "I really disliked it",
    "Boring and ugly.",
    "The worst film of the year!",
    "A painful, silly comedy",
    "Poor performances, hated it",
    "Bad from start to finish",
    "I would never watch it again",
    "A horrible mess",
    "Annoying music and bad actors",
    "Truly awful work",
    "Terrible, I regretted every minute",
    "Dull and stupid",
    "A disaster, simply awful",
    "Weak story, sad waste of time",
    "Dreadful! Not recommended.",
    "Bad film, bad cast, no fun",
];

#[test]
fn text_vectorization_feeds_an_embedding_classifier() {
    let texts: Vec<&str> = POSITIVE.iter().chain(&NEGATIVE).copied().collect();
    let labels: Vec<f32> = (0..texts.len()).map(|i| if i < POSITIVE.len() { 1.0 } else { 0.0 }).collect();
    let mut tv = TextVectorization::new().max_tokens(200).output_sequence_length(10);
    tv.adapt(&texts).unwrap();
    let x = tv.call(&texts).unwrap(); // I64 [40, 10], 0 = padding
    assert_eq!(x.dims(), &[40, 10]);
    let y = Tensor::from_vec(labels, [texts.len(), 1]).unwrap();

    let mut m = Sequential::with_seed(7);
    m.add(Embedding::new(tv.vocabulary_size(), 8).mask_zero(true).input_shape([10]));
    m.add(GlobalAveragePooling1D::new());
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(60).batch_size(8).seed(3).verbose(0)).unwrap();
    let acc = h.last("accuracy").unwrap();
    assert!(acc >= 0.95, "train accuracy {acc}");

    // new sentences made of words seen in training: the OOV words map to id 1
    let probe = tv.call(&["a great, wonderful film", "an awful and boring mess"]).unwrap();
    let p = m.predict(&probe, 2).unwrap().to_vec::<f32>().unwrap();
    assert!(p[0] > 0.5 && p[1] < 0.5, "predictions {p:?}");
}
