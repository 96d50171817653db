//! The `ListQueues` reply: the engine's [`QueueList`] written entry by
//! entry while the message is serialized, so a reply costs its message
//! buffer only; on the bus exactly a `Vec<QueueInfo>`.

use apbus::QueueInfo;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use zbus::zvariant::{Signature, Type};

use crate::engine::QueueList;

impl Serialize for QueueList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for q in self.iter() {
            seq.serialize_element(&q)?;
        }
        seq.end()
    }
}

/// On the bus exactly a `Vec<QueueInfo>`: `a(sssbbbssss)`.
impl Type for QueueList {
    const SIGNATURE: &'static Signature = <Vec<QueueInfo> as Type>::SIGNATURE;
}
