//! Images of a [`DecisionsFold`]: its whole state as bytes, so a restore can
//! start from a checkpoint instead of the first record of the partition.
//!
//! An image is a pure function of the fold's state: maps are written in key
//! order, so two folds of the same log prefix give byte-equal images (tests
//! compare states this way). Reading an image back and folding the records
//! after it gives the same state as folding the whole partition; the
//! simulation checks this under every fault it injects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::decisions::{Account, DecisionsFold, Grant};
use super::{Fault, fault};
use crate::campaign::Campaigns;

/// The image format this build writes and reads.
pub const IMAGE_VERSION: u32 = 1;

/// An image that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "checkpoint image is not valid ({0}); it is skipped and the partition is restored from its first record"
    )]
    Malformed(#[from] serde_json::Error),
    #[error(
        "checkpoint image has format version {found}, this build reads {IMAGE_VERSION}; it is skipped and the partition is restored from its first record"
    )]
    Version { found: u32 },
    #[error(
        "checkpoint image breaks the fold's own rules ({0}); it is skipped and the partition is restored from its first record"
    )]
    Inconsistent(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    version: u32,
    accounts: BTreeMap<String, AccountImage>,
    grants: BTreeMap<String, Grant>,
    /// Oldest first, as the dedup window keeps them.
    recent: Vec<String>,
    movements: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountImage {
    allowance: i64,
    granted: i64,
    grants: u64,
    released: i64,
    returned: i64,
    users: BTreeMap<String, u32>,
}

impl DecisionsFold {
    /// The fold's whole state as bytes (JSON, keys in order).
    pub fn image(&self) -> Vec<u8> {
        let accounts = self
            .accounts
            .iter()
            .map(|(id, a)| {
                let users = if fault(Fault::ImageForgetsUsers) {
                    BTreeMap::new()
                } else {
                    a.users.iter().map(|(u, n)| (u.clone(), *n)).collect()
                };
                let image = AccountImage {
                    allowance: a.allowance,
                    granted: a.granted,
                    grants: a.grants,
                    released: a.released,
                    returned: a.returned,
                    users,
                };
                (id.clone(), image)
            })
            .collect();
        let image = Image {
            version: IMAGE_VERSION,
            accounts,
            grants: self
                .grants
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            recent: self.recent.iter().map(str::to_owned).collect(),
            movements: self.movements.iter().cloned().collect(),
        };
        // Serialising maps with string keys and plain numbers cannot fail.
        serde_json::to_vec(&image).unwrap_or_default()
    }

    /// The fold whose [`DecisionsFold::image`] `bytes` are.
    pub fn from_image(campaigns: Arc<Campaigns>, bytes: &[u8]) -> Result<Self, ImageError> {
        let image: Image = serde_json::from_slice(bytes)?;
        if image.version != IMAGE_VERSION {
            return Err(ImageError::Version {
                found: image.version,
            });
        }
        if image.recent.len() > super::decisions::DEDUP_WINDOW {
            return Err(ImageError::Inconsistent(
                "more recent request ids than the dedup window holds",
            ));
        }
        let mut fold = DecisionsFold::new(campaigns);
        for (id, a) in image.accounts {
            if a.granted > a.allowance {
                return Err(ImageError::Inconsistent(
                    "an account granted beyond its allowance",
                ));
            }
            let account = Account {
                allowance: a.allowance,
                granted: a.granted,
                grants: a.grants,
                released: a.released,
                returned: a.returned,
                users: a.users.into_iter().collect::<super::FastMap<_, _>>(),
            };
            fold.accounts.insert(id, account);
        }
        fold.grants = image.grants.into_iter().collect();
        for id in &image.recent {
            fold.remember(id);
        }
        fold.movements = image.movements.into_iter().collect();
        Ok(fold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{campaigns_limited as campaigns, decision, movement};
    use schemas::DecisionOutcome::{Denied, Granted, Released};
    use schemas::{Record, TreasuryKind};

    fn log() -> Vec<Record> {
        let mut log = vec![movement("l1", TreasuryKind::LeaseCredit, 500)];
        for i in 0..40 {
            let outcome = if i % 7 == 3 { Denied } else { Granted };
            log.push(decision(
                &format!("r{i}"),
                &format!("u{}", i % 9),
                outcome,
                10,
            ));
            if i % 11 == 5 {
                log.push(decision(
                    &format!("r{i}"),
                    &format!("u{}", i % 9),
                    Released,
                    10,
                ));
            }
        }
        log.push(movement("ret1", TreasuryKind::LeaseReturn, 20));
        log
    }

    fn fold_of(records: &[Record]) -> DecisionsFold {
        let mut f = DecisionsFold::new(campaigns(2));
        for r in records {
            f.apply(r);
        }
        f
    }

    #[test]
    fn image_then_tail_equals_folding_everything_at_every_cut() {
        let log = log();
        let whole = fold_of(&log).image();
        for cut in 0..=log.len() {
            let image = fold_of(&log[..cut]).image();
            let mut f = DecisionsFold::from_image(campaigns(2), &image).expect("own image");
            for r in &log[cut..] {
                f.apply(r);
            }
            assert_eq!(f.image(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_restored_fold_still_recognises_redeliveries_and_releases_once() {
        let log = log();
        let mut f = DecisionsFold::from_image(campaigns(2), &fold_of(&log).image()).expect("image");
        // r0 was granted and not released; r5 was released already.
        assert_eq!(f.apply(&log[1]), crate::Effect::Ignored);
        assert_eq!(
            f.apply(&decision("r5", "u5", Released, 10)),
            crate::Effect::Ignored
        );
    }

    #[test]
    fn bad_images_are_refused_with_a_reason() {
        let good = fold_of(&log()).image();
        assert!(matches!(
            DecisionsFold::from_image(campaigns(2), &good[..good.len() / 2]),
            Err(ImageError::Malformed(_))
        ));
        let text = String::from_utf8(good.clone()).expect("json");
        let future = text.replacen("\"version\":1", "\"version\":9", 1);
        let err = DecisionsFold::from_image(campaigns(2), future.as_bytes()).unwrap_err();
        assert!(matches!(err, ImageError::Version { found: 9 }), "{err}");
        assert!(err.to_string().contains("restored from its first record"));
    }

    #[test]
    fn the_forgetful_image_fault_changes_the_image() {
        let f = fold_of(&log());
        let forgetful = super::super::with_fault(Fault::ImageForgetsUsers, || f.image());
        assert_ne!(forgetful, f.image());
    }
}
