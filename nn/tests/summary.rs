//! The seed CNN's summary matches Keras's table.

use keel_nn::prelude::*;

fn seed_cnn() -> Sequential {
    let mut model = Sequential::new();
    model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Flatten::new());
    model.add(Dense::new(128).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
}

#[test]
fn seed_cnn_summary_is_keras_table() {
    let model = seed_cnn();
    let s = model.summary();
    println!("{s}");
    let expected = r#"Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #   
=================================================================
 conv2d (Conv2D)             (None, 26, 26, 32)        320       
                                                                 
 max_pooling2d (MaxPooling2D  (None, 13, 13, 32)       0         
 )                                                               
                                                                 
 conv2d_1 (Conv2D)           (None, 11, 11, 64)        18496     
                                                                 
 max_pooling2d_1 (MaxPooling  (None, 5, 5, 64)         0         
 2D)                                                             
                                                                 
 flatten (Flatten)           (None, 1600)              0         
                                                                 
 dense (Dense)               (None, 128)               204928    
                                                                 
 dense_1 (Dense)             (None, 10)                1290      
                                                                 
=================================================================
Total params: 225,034
Trainable params: 225,034
Non-trainable params: 0
_________________________________________________________________
"#;
    assert_eq!(s, expected);
}

#[test]
fn seed_cnn_shapes_names_and_counts() {
    let model = seed_cnn();
    assert!(model.is_built());
    assert_eq!(model.count_params(), 225_034);
    assert_eq!(model.output_shapes().unwrap(), vec![vec![10]]);
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "conv2d/kernel",
            "conv2d/bias",
            "conv2d_1/kernel",
            "conv2d_1/bias",
            "dense/kernel",
            "dense/bias",
            "dense_1/kernel",
            "dense_1/bias"
        ]
    );
}

/// Keras's `summary(expand_nested=True)` (tf.keras 2's layout): a nested model's layers
/// follow its row inside `|` bars, opened and closed by `¯` lines.
#[test]
fn a_nested_model_expands_in_the_summary() {
    let mut base = Sequential::new().with_name("base");
    base.add(Dense::new(4).input_shape([2]));
    base.add(Dense::new(3));
    let mut model = Sequential::new();
    model.add(base);
    model.add(Dense::new(1));
    let s = model.summary_with(true);
    println!("{s}");
    let expected = r#"Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #   
=================================================================
 base (Sequential)           (None, 3)                 27        
|¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯|
| dense (Dense)              (None, 4)                 12       |
|                                                               |
| dense_1 (Dense)            (None, 3)                 15       |
¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯¯
                                                                 
 dense (Dense)               (None, 1)                 4         
                                                                 
=================================================================
Total params: 31
Trainable params: 31
Non-trainable params: 0
_________________________________________________________________
"#;
    assert_eq!(s, expected);
    // unexpanded, the nested model is one row, as before
    assert!(!model.summary().contains('|') && model.summary() == model.summary_with(false));
    assert!(model.summary().contains(" base (Sequential)           (None, 3)                 27"));
}
