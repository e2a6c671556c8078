//! The op families. Each module holds one family: its table or parameters, its
//! `Tensor` methods, and its CPU kernel (in a `cpu` submodule).

pub mod binary;
pub(crate) mod cast;
pub mod conv;
pub mod creation;
pub mod depthwise;
pub mod image;
pub mod index;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rnn;
pub mod unary;
pub mod view;
pub(crate) mod vmath;
pub(crate) mod xent;

pub use binary::{BinaryOp, CmpOp};
pub use conv::{Conv2dParams, Padding};
pub use depthwise::DepthwiseConv2dParams;
pub use image::{AffineParams, FillMode, ImageInterpolation};
pub use optim::{
    adam_update_many, sgd_update_many, AdamOperands, AdamStep, AdamUpdate, SgdOperands, SgdStep, SgdUpdate,
};
pub use pool::Pool2dParams;
pub use reduce::ReduceOp;
pub use unary::UnaryOp;
