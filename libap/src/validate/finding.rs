//! What a verdict is: a [`Finding`] of some [`FindingKind`], how bad
//! ([`Severity`]), what kind of refusal it makes ([`Refusal`]) and what
//! the admin can change about it ([`Remedy`]).

use crate::apqn::Apqn;
use crate::mask::ApMask;
use std::fmt;
use uuid::Uuid;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Refused (by the kernel, or by us because it cannot work).
    Error,
    /// Legal but probably not what was meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// An id above `ap_max_adapter_id`/`ap_max_domain_id` (kernel ENODEV).
    OutOfRange,
    /// APQNs the masks give to the host (kernel EADDRNOTAVAIL).
    HostOwned,
    /// APQNs already in another mdev's matrix (kernel EADDRINUSE).
    InUse,
    /// A mask change would take back APQNs that mdevs hold (kernel EBUSY).
    MaskBusy,
    /// Two autostart definitions share APQNs: only one can start.
    SharedAutostart,
    /// Two definitions share APQNs: they cannot be active together.
    SharedManual,
    /// A control domain the LPAR does not have (ADM): the guest will not get it.
    ControlDomainNotInHost,
    /// Control domains but no usage domain.
    ControlWithoutUsage,
    /// Adapters but no domain: no APQN.
    AdaptersWithoutDomains,
    /// Domains but no adapter: no APQN.
    DomainsWithoutAdapters,
    /// Adapters or usage domains the LPAR does not have (legal over-provisioning).
    OutsideHostConfig,
    /// Two definitions with one name.
    DuplicateName,
    /// Two definitions with one UUID.
    DuplicateUuid,
    /// A name that breaks the name rules.
    InvalidName,
    /// The vfio_ap module is not loaded: mdevs cannot exist.
    VfioApNotLoaded,
}

#[allow(non_upper_case_globals)]
impl FindingKind {
    /// Same as [`FindingKind::InUse`]: the APQN is assigned elsewhere.
    pub const AssignedElsewhere: FindingKind = FindingKind::InUse;

    /// The errno the kernel gives for this refusal, when it is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FindingKind::OutOfRange => Some(libc::ENODEV),
            FindingKind::HostOwned => Some(libc::EADDRNOTAVAIL),
            FindingKind::InUse => Some(libc::EADDRINUSE),
            FindingKind::MaskBusy => Some(libc::EBUSY),
            _ => None,
        }
    }

    /// What kind of refusal the finding is (apd names its D-Bus error
    /// after it).
    pub fn refusal(&self) -> Refusal {
        match self {
            FindingKind::OutOfRange => Refusal::OutOfRange,
            FindingKind::HostOwned => Refusal::HostOwned,
            FindingKind::InUse => Refusal::InUse,
            FindingKind::MaskBusy => Refusal::Busy,
            FindingKind::SharedAutostart
            | FindingKind::SharedManual
            | FindingKind::DuplicateName
            | FindingKind::DuplicateUuid => Refusal::Conflict,
            FindingKind::VfioApNotLoaded => Refusal::Failed,
            _ => Refusal::Invalid,
        }
    }
}

/// The kinds of refusal a finding can be: an id out of range, a queue
/// the host or another mdev holds, a mask change the kernel would refuse
/// as busy, definitions in conflict, invalid input, or a host that cannot
/// do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// An id above the host's maximum (ENODEV).
    OutOfRange,
    /// The masks give a queue to the host (EADDRNOTAVAIL).
    HostOwned,
    /// Another mdev holds a queue (EADDRINUSE).
    InUse,
    /// A mask change would take an assigned queue (EBUSY).
    Busy,
    /// Definitions conflict with each other.
    Conflict,
    /// The input breaks a rule.
    Invalid,
    /// The host cannot do it now.
    Failed,
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What kind.
    pub kind: FindingKind,
    /// The APQNs concerned, ascending.
    pub apqns: Vec<Apqn>,
    /// The mdevs concerned (other than the one acted on, for refusals).
    pub mdevs: Vec<(Uuid, Option<String>)>,
    /// One sentence: what was refused, why, who is in the way.
    pub message: String,
    /// The part after "cannot ... :", for callers composing their own
    /// sentence (e.g. "cannot start guest1: {reason}").
    pub reason: String,
    /// What the admin can do about it, when the fix is a change of ours
    /// (masks, an assignment); the front end names the command, so
    /// neither `message` nor `reason` says it.
    pub remedy: Option<Box<Remedy>>,
}

/// A fix for a finding, as a change rather than a command line: which
/// command makes it is the front end's to say (apd renders these for
/// apctl users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Give the queues to vfio_ap: clear these adapters' bits in apmask,
    /// or these domains' bits in aqmask (either frees the queues).
    GiveToVfioAp {
        /// Adapters whose apmask bits give the queues to the host.
        adapters: ApMask,
        /// Domains whose aqmask bits give the queues to the host.
        domains: ApMask,
    },
    /// Assign usage domains to the mdev (it has adapters but no domain);
    /// the mdev as the admin names it (its name, else its UUID).
    AssignDomains(String),
    /// Assign adapters to the mdev (it has domains but no adapter).
    AssignAdapters(String),
}

impl Finding {
    /// The same finding with a remedy.
    #[must_use]
    pub fn with_remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(Box::new(remedy));
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Finding {}
