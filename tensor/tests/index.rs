//! Indexing: index_select / index_add, gather / scatter_add, one_hot,
//! concat / stack / split, against hand-computed values; bad indices error.

mod common;
use common::*;
use keel_tensor::{DType, Error, Tensor};

fn i64s(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

#[test]
fn index_select_and_its_backward() {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), (3, 4)).unwrap();
    let idx = i64s(&[2, 0, 2], &[3]);
    assert_eq!(
        x.index_select(&idx, 0).unwrap().to_vec::<f32>().unwrap(),
        vec![8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]
    );
    let cols = x.index_select(&i64s(&[3, 1], &[2]), 1).unwrap();
    assert_eq!(cols.to_vec::<f32>().unwrap(), vec![3., 1., 7., 5., 11., 9.]);
    // strided input
    assert_eq!(x.t().unwrap().index_select(&i64s(&[1], &[1]), 0).unwrap().to_vec::<f32>().unwrap(), vec![1., 5., 9.]);
    // index_add accumulates repeated indices
    let g = Tensor::ones((3, 4), DType::F32, &keel_tensor::Device::Cpu).unwrap();
    let back = g.index_add_into(&idx, 0, &[3, 4].into()).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), vec![1., 1., 1., 1., 0., 0., 0., 0., 2., 2., 2., 2.]);
    assert!(matches!(x.index_select(&i64s(&[3], &[1]), 0), Err(Error::IndexOutOfRange { index: 3, size: 3, .. })));
    assert!(matches!(x.index_select(&i64s(&[-1], &[1]), 0), Err(Error::IndexOutOfRange { .. })));
    assert!(x.index_select(&Tensor::from_vec(vec![0.0f32], 1).unwrap(), 0).is_err());
}

#[test]
fn gather_and_scatter_add_follow_pytorch() {
    // torch.gather(torch.tensor([[1,2],[3,4]]), 1, torch.tensor([[0,0],[1,0]])) == [[1,1],[4,3]]
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2)).unwrap();
    let idx = i64s(&[0, 0, 1, 0], &[2, 2]);
    assert_eq!(x.gather(&idx, 1).unwrap().to_vec::<f32>().unwrap(), vec![1., 1., 4., 3.]);
    assert_eq!(x.gather(&idx, 0).unwrap().to_vec::<f32>().unwrap(), vec![1., 2., 3., 2.]);
    // picking one class per row (cross-entropy style)
    let logits = rand(1, &[4, 5], -1.0, 1.0);
    let labels = i64s(&[4, 0, 2, 2], &[4, 1]);
    let picked = logits.gather(&labels, 1).unwrap();
    let lv = vals(&logits);
    assert_eq!(vals(&picked), vec![lv[4], lv[5], lv[12], lv[17]]);
    let back = picked.ones_like().unwrap().scatter_add_into(&labels, 1, &[4, 5].into()).unwrap();
    let bv = back.to_vec::<f32>().unwrap();
    assert_eq!(bv.iter().sum::<f32>(), 4.0);
    assert_eq!((bv[4], bv[5], bv[12], bv[17]), (1.0, 1.0, 1.0, 1.0));
    assert!(x.gather(&i64s(&[2, 0, 0, 0], &[2, 2]), 1).is_err());
}

#[test]
fn one_hot_encodes_labels() {
    let y = i64s(&[2, 0, 1], &[3]);
    let oh = y.one_hot(3, DType::F32).unwrap();
    assert_eq!(oh.dims(), &[3, 3]);
    assert_eq!(oh.to_vec::<f32>().unwrap(), vec![0., 0., 1., 1., 0., 0., 0., 1., 0.]);
    let u = Tensor::from_vec(vec![1u8, 9], 2).unwrap();
    assert_eq!(u.one_hot(10, DType::F32).unwrap().to_vec::<f32>().unwrap()[19], 1.0);
    assert!(matches!(y.one_hot(2, DType::F32), Err(Error::IndexOutOfRange { index: 2, size: 2, .. })));
    assert!(Tensor::from_vec(vec![1.0f32], 1).unwrap().one_hot(2, DType::F32).is_err());
}

#[test]
fn concat_stack_split() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2)).unwrap();
    let b = Tensor::from_vec(vec![5.0f32, 6.0], (1, 2)).unwrap();
    let c = Tensor::concat(&[a.clone(), b.clone()], 0).unwrap();
    assert_eq!(c.dims(), &[3, 2]);
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![1., 2., 3., 4., 5., 6.]);
    let d = Tensor::concat(&[a.clone(), a.t().unwrap()], 1).unwrap();
    assert_eq!(d.to_vec::<f32>().unwrap(), vec![1., 2., 1., 3., 3., 4., 2., 4.]);
    let s = Tensor::stack(&[a.clone(), a.clone()], 0).unwrap();
    assert_eq!(s.dims(), &[2, 2, 2]);
    let s1 = Tensor::stack(&[a.clone(), a.neg().unwrap()], -1).unwrap();
    assert_eq!(s1.dims(), &[2, 2, 2]);
    assert_eq!(s1.to_vec::<f32>().unwrap(), vec![1., -1., 2., -2., 3., -3., 4., -4.]);
    let parts = c.split(&[1, 2], 0).unwrap();
    assert_eq!(parts[1].to_vec::<f32>().unwrap(), vec![3., 4., 5., 6.]);
    assert!(parts[1].same_storage(&c), "split returns views");
    let ch = c.chunk(2, 0).unwrap();
    assert_eq!((ch[0].dims()[0], ch[1].dims()[0]), (2, 1));
    let msg = Tensor::concat(&[a.clone(), b.t().unwrap()], 0).unwrap_err().to_string();
    assert!(msg.contains("concat") && msg.contains("[2, 2]") && msg.contains("[2, 1]"), "{msg}");
    assert!(Tensor::concat(&[], 0).is_err());
    assert!(c.split(&[1, 1], 0).is_err());
    let i = Tensor::from_vec(vec![1i64, 2], (1, 2)).unwrap();
    assert_eq!(Tensor::concat(&[i.clone(), i], 0).unwrap().to_vec::<i64>().unwrap(), vec![1, 2, 1, 2]);
}
