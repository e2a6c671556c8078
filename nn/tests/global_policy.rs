//! `mixed_precision::set_global_policy` (its own test binary: the policy is process-wide).

use keel_nn::mixed_precision::{global_policy, set_global_policy, DTypePolicy};
use keel_nn::prelude::*;

#[test]
fn models_take_the_global_policy_when_created() {
    assert_eq!(global_policy(), DTypePolicy::Float32);
    let before = Sequential::new();
    set_global_policy("mixed_bfloat16").unwrap();
    assert_eq!(global_policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(Sequential::new().get_dtype_policy(), DTypePolicy::MixedBFloat16);
    let inp = Input::new([3]);
    let out = Dense::new(2).call(&inp).unwrap();
    assert_eq!(Model::new(&[inp], &[out]).unwrap().get_dtype_policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(before.get_dtype_policy(), DTypePolicy::Float32, "existing models keep theirs");
    assert!(set_global_policy("float16").is_err());
    assert_eq!(global_policy(), DTypePolicy::MixedBFloat16, "a rejected name changes nothing");
    set_global_policy("float32").unwrap();
    assert_eq!(Sequential::new().get_dtype_policy(), DTypePolicy::Float32);
}
