//! The pipeline's stages, one file each. Every stage implements
//! [`crate::runtime::Stage`] and is run by the same runner. [`leases`] is
//! the lease protocol the coupon (budget) and fulfillment (stock) stages
//! share.

pub mod coupon;
pub mod fulfillment;
pub mod intent;
pub mod leases;
pub mod reply;

pub use coupon::CouponStage;
pub use fulfillment::FulfillmentStage;
pub use intent::IntentStage;
pub use reply::ReplyStage;
