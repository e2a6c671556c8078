//! Masked outputs in `fit` and `evaluate`: with `Embedding(mask_zero)` before a sequence
//! output, the loss and the metrics count only the unmasked positions (Keras's loss and
//! metric masking), so the targets at padded positions do not matter.

use keel_nn::{Activation, Dense, Embedding, Loss, LSTM};
use keel_optim::Adam;
use keel_tensor::{DType, Tensor};
use keel_train::{Fit, MetricSpec, Sequential};

fn tagger() -> Sequential {
    let mut m = Sequential::with_seed(4);
    m.add(Embedding::new(8, 4).mask_zero(true).input_shape([5]));
    m.add(LSTM::new(6).return_sequences(true));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

fn data(pad_label: i64) -> (Tensor, Tensor) {
    let x: Vec<i64> = vec![1, 2, 3, 0, 0, 4, 5, 0, 0, 0, 6, 7, 1, 2, 0, 3, 0, 0, 0, 0];
    let labels: Vec<i64> = x.iter().map(|&t| if t == 0 { pad_label } else { t % 3 }).collect();
    (Tensor::from_vec(x, [4, 5]).unwrap(), Tensor::from_vec(labels, [4, 5]).unwrap())
}

#[test]
fn loss_and_accuracy_count_only_unmasked_positions() {
    let m = tagger();
    let (x, y) = data(0);
    let probs = m.predict(&x, 32).unwrap().to_vec_f64().unwrap(); // [4, 5, 3]
    let (xs, ys) = (x.to_vec_f64().unwrap(), y.to_vec_f64().unwrap());
    let (mut nll, mut right, mut kept) = (0.0, 0.0, 0.0);
    for i in 0..20 {
        if xs[i] == 0.0 {
            continue;
        }
        let p = &probs[3 * i..3 * i + 3];
        let label = ys[i] as usize;
        nll -= p[label].ln();
        let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        right += f64::from(u8::from(best == label));
        kept += 1.0;
    }
    let (loss, acc) = m.evaluate(&x, &y).unwrap();
    assert!((loss - nll / kept).abs() < 1e-5, "loss {loss} vs the mean over the {kept} kept positions {}", nll / kept);
    assert!((acc - right / kept).abs() < 1e-9, "accuracy {acc} vs {}", right / kept);
    // other labels at the padded positions change nothing
    let (_, y2) = data(2);
    let (loss2, acc2) = m.evaluate(&x, &y2).unwrap();
    assert_eq!((loss2, acc2), (loss, acc));
}

#[test]
fn training_ignores_the_targets_at_padded_positions() {
    let fit = || Fit::new().epochs(3).batch_size(2).seed(1).verbose(0);
    let (x, y0) = data(0);
    let (_, y2) = data(2);
    let mut a = tagger();
    let ha = a.fit(&x, &y0, fit()).unwrap();
    let mut b = tagger();
    let hb = b.fit(&x, &y2, fit()).unwrap();
    assert_eq!(ha.get("loss").unwrap(), hb.get("loss").unwrap());
    assert_eq!(ha.get("accuracy").unwrap(), hb.get("accuracy").unwrap());
    let l = ha.get("loss").unwrap();
    assert!(l[2] < l[0], "the masked loss goes down: {l:?}");
    assert_eq!(a.predict(&x, 32).unwrap().to_vec_f64().unwrap(), b.predict(&x, 32).unwrap().to_vec_f64().unwrap());
    let _ = DType::F32;
}

#[test]
fn masked_rows_of_a_flat_output_are_not_counted() {
    // Masking on [batch, features]: a row of zeros is masked, its loss and accuracy too
    let mut m = Sequential::with_seed(2);
    m.add(keel_nn::Masking::new(0.0).input_shape([3]));
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let x =
        Tensor::from_vec(vec![1.0f32, 2.0, 0.5, 0.0, 0.0, 0.0, -1.0, 0.3, 2.0, 0.0, 0.0, 0.0, 0.7, -0.2, 0.1], [5, 3])
            .unwrap();
    let probs = m.predict(&x, 8).unwrap().to_vec_f64().unwrap();
    let kept = [0usize, 2, 4];
    for label in [0i64, 1] {
        let y = Tensor::from_vec(vec![label; 5], [5]).unwrap();
        let (loss, acc) = m.evaluate(&x, &y).unwrap();
        let l = label as usize;
        let nll: f64 = kept.iter().map(|&i| -probs[2 * i + l].ln()).sum::<f64>() / 3.0;
        let right = kept.iter().filter(|&&i| (probs[2 * i + l] > probs[2 * i + 1 - l]) as usize == 1).count();
        assert!((loss - nll).abs() < 1e-5, "label {label}: loss {loss} vs {nll}");
        assert!((acc - right as f64 / 3.0).abs() < 1e-9, "label {label}: accuracy {acc} vs {right}/3");
    }
    let _ = DType::F32;
}
