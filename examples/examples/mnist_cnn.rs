//! The seed CNN on the embedded MNIST digits (the README's main job).
//!
//! Not built yet: the Keras front end (layers, compile/fit) is still being
//! written; until it lands this example only says so.

fn main() {
    println!("mnist_cnn: not built yet (the Keras front end lands with the training issue)");
}
