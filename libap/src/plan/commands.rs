//! The plans of single commands (apd's `Start`, `Stop`, `Assign`,
//! `Unassign`, `SetMasks`, `ConfigureAdapter`): the same [`Step`]s the
//! planner of `apply` uses, in the order the kernel needs, so that every
//! write sequence is decided here and run by [`crate::apply::execute_steps`].
//!
//! A command plan names every change the command asks for, also the ones
//! already in place (an assign of an assigned id, the start of an active
//! mdev): the executor finds those and reports them as such.

use super::Step;
use crate::definition::Definition;
use crate::host::{Host, Matrix};
use crate::mask::ApMask;
use crate::validate::AssignKind;
use uuid::Uuid;

/// The ids of a matrix by kind, in the order they are written: adapters,
/// then domains, then control domains (with no domain yet an adapter has
/// no APQN for the kernel to refuse).
fn by_kind(m: &Matrix) -> [(AssignKind, ApMask); 3] {
    [
        (AssignKind::Adapter, m.adapters),
        (AssignKind::Domain, m.domains),
        (AssignKind::ControlDomain, m.control_domains),
    ]
}

/// Start `def`: create its mdev, then assign its matrix id by id. When
/// the mdev is active already, only the create (found in place): a start
/// never changes a running mdev's assignment.
pub fn start(host: &Host, def: &Definition) -> Vec<Step> {
    let mut steps = vec![Step::Create {
        uuid: def.uuid,
        name: def.name.clone(),
    }];
    if host.mdevs.contains_key(&def.uuid) {
        return steps;
    }
    steps.extend(assignment(def.uuid, def.name.clone(), &def.matrix(), true));
    steps
}

/// Stop (remove) an mdev; `matrix` is its assignment, for the rollback.
pub fn stop(uuid: Uuid, name: Option<String>, matrix: Matrix) -> Vec<Step> {
    vec![Step::Remove { uuid, name, matrix }]
}

/// Assign (`add`) or unassign every id of `ids`, one step per id.
pub fn assignment(uuid: Uuid, name: Option<String>, ids: &Matrix, add: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for (kind, mask) in by_kind(ids) {
        for id in mask.iter() {
            let name = name.clone();
            steps.push(if add {
                Step::Assign {
                    uuid,
                    name,
                    kind,
                    id,
                }
            } else {
                Step::Unassign {
                    uuid,
                    name,
                    kind,
                    id,
                }
            });
        }
    }
    steps
}

/// The mask writes from (old_ap, old_aq) to (new_ap, new_aq) in two
/// halves: first every bit that clears (queues given to vfio_ap), then
/// every bit that sets (queues taken back for the host). Each write only
/// clears or only sets bits, so every state in between gives the host only
/// APQNs the old or the new masks give it, and the kernel's check of each
/// single write (against the other mask's current value) refuses nothing
/// the final state allows (kernel spec §2). None for a half without change.
pub fn mask_halves(
    old_ap: ApMask,
    old_aq: ApMask,
    new_ap: ApMask,
    new_aq: ApMask,
) -> (Option<Step>, Option<Step>) {
    let mid_ap = old_ap.intersection(new_ap);
    let mid_aq = old_aq.intersection(new_aq);
    let clear = ((mid_ap, mid_aq) != (old_ap, old_aq)).then_some(Step::SetMasks {
        apmask: mid_ap,
        aqmask: mid_aq,
        old_apmask: old_ap,
        old_aqmask: old_aq,
    });
    let set = ((new_ap, new_aq) != (mid_ap, mid_aq)).then_some(Step::SetMasks {
        apmask: new_ap,
        aqmask: new_aq,
        old_apmask: mid_ap,
        old_aqmask: mid_aq,
    });
    (clear, set)
}

/// Change the live masks to (new_ap, new_aq): [`mask_halves`], or one
/// step found in place when nothing changes.
pub fn masks(old_ap: ApMask, old_aq: ApMask, new_ap: ApMask, new_aq: ApMask) -> Vec<Step> {
    match mask_halves(old_ap, old_aq, new_ap, new_aq) {
        (None, None) => vec![Step::SetMasks {
            apmask: new_ap,
            aqmask: new_aq,
            old_apmask: old_ap,
            old_aqmask: old_aq,
        }],
        (clear, set) => clear.into_iter().chain(set).collect(),
    }
}

/// Configure an adapter on or off.
pub fn configure_adapter(adapter: u8, on: bool) -> Vec<Step> {
    vec![Step::ConfigureAdapter { adapter, on }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn owned(ap: ApMask, aq: ApMask) -> BTreeSet<(u8, u8)> {
        let mut s = BTreeSet::new();
        for a in ap.iter() {
            for d in aq.iter() {
                s.insert((a, d));
            }
        }
        s
    }

    fn small_mask() -> impl Strategy<Value = ApMask> {
        proptest::collection::vec(0u8..6, 0..6).prop_map(ApMask::from_ids)
    }

    proptest! {
        /// Every single mask write (apmask, then aqmask, per step, as the
        /// executor writes them) gives the host only APQNs the old or the
        /// new masks give it, each step starts where the last one ended,
        /// and the last state is the new one.
        #[test]
        fn mask_writes_never_take_more_than_old_or_new(
            old_ap in small_mask(), old_aq in small_mask(),
            new_ap in small_mask(), new_aq in small_mask(),
        ) {
            let steps = masks(old_ap, old_aq, new_ap, new_aq);
            let allowed: BTreeSet<_> =
                owned(old_ap, old_aq).union(&owned(new_ap, new_aq)).copied().collect();
            let (mut ap, mut aq) = (old_ap, old_aq);
            for s in &steps {
                let Step::SetMasks { apmask, aqmask, old_apmask, old_aqmask } = *s else {
                    panic!("not a mask step: {s:?}");
                };
                prop_assert_eq!((old_apmask, old_aqmask), (ap, aq));
                ap = apmask;
                prop_assert!(owned(ap, aq).is_subset(&allowed));
                aq = aqmask;
                prop_assert!(owned(ap, aq).is_subset(&allowed));
            }
            prop_assert_eq!((ap, aq), (new_ap, new_aq));
            prop_assert!(!steps.is_empty() && steps.len() <= 2);
        }
    }

    #[test]
    fn unchanged_masks_are_one_step_in_place() {
        let m = ApMask::full();
        assert_eq!(masks(m, m, m, m).len(), 1);
        assert_eq!(mask_halves(m, m, m, m), (None, None));
    }

    #[test]
    fn clearing_comes_before_setting() {
        // apmask sets 6, aqmask clears 4: the clearing step goes first.
        let old_ap = ApMask::from_ids([1, 2]);
        let new_ap = ApMask::from_ids([1, 2, 6]);
        let old_aq = ApMask::from_ids([4, 5]);
        let new_aq = ApMask::from_ids([5]);
        let steps = masks(old_ap, old_aq, new_ap, new_aq);
        assert_eq!(
            steps,
            vec![
                Step::SetMasks {
                    apmask: old_ap,
                    aqmask: new_aq,
                    old_apmask: old_ap,
                    old_aqmask: old_aq
                },
                Step::SetMasks {
                    apmask: new_ap,
                    aqmask: new_aq,
                    old_apmask: old_ap,
                    old_aqmask: new_aq
                },
            ]
        );
    }

    #[test]
    fn a_start_creates_then_assigns_adapters_domains_control_domains() {
        let mut def = Definition::new(Uuid::nil());
        def.adapters = ApMask::from_ids([5]);
        def.domains = ApMask::from_ids([4, 0x47]);
        def.control_domains = ApMask::from_ids([1]);
        let host = Host::default();
        let steps = start(&host, &def);
        let actions: Vec<&str> = steps.iter().map(Step::action).collect();
        assert_eq!(
            actions,
            vec![
                "start",
                "assign-adapter",
                "assign-domain",
                "assign-domain",
                "assign-control-domain"
            ]
        );
        // An empty definition only creates.
        assert_eq!(start(&host, &Definition::new(Uuid::nil())).len(), 1);
        // An active one: only the create, which the executor finds in place.
        let mut active = Host::default();
        active.mdevs.insert(
            Uuid::nil(),
            crate::host::Mdev {
                uuid: Uuid::nil(),
                matrix: Matrix::default(),
                guest_matrix: None,
                in_use: false,
            },
        );
        assert_eq!(start(&active, &def).len(), 1);
    }

    #[test]
    fn an_unassignment_names_every_id_given() {
        let ids = Matrix::new(
            ApMask::from_ids([5, 6]),
            ApMask::from_ids([4]),
            ApMask::empty(),
        );
        let steps = assignment(Uuid::nil(), None, &ids, false);
        let actions: Vec<&str> = steps.iter().map(Step::action).collect();
        assert_eq!(
            actions,
            vec!["unassign-adapter", "unassign-adapter", "unassign-domain"]
        );
    }
}
