//! The kernel's uevent wire format (kernel spec §9): `ACTION@DEVPATH\0`
//! then `KEY=VALUE\0` pairs.

use std::collections::BTreeMap;
use std::fmt;

/// The largest uevent the kernel sends (UEVENT_BUFFER_SIZE is 2048) plus
/// room for the header; bigger packets are truncated and refused.
pub const MAX_MESSAGE: usize = 8192;

/// One parsed kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, ...
    pub action: String,
    /// The device path, e.g. `/devices/ap/card05/05.0004`.
    pub devpath: String,
    /// Every `KEY=VALUE` pair (values keep their bytes, e.g. the trailing
    /// newline of `APMASK=`).
    pub env: BTreeMap<String, String>,
}

/// Why a message is not a kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeventError(String);

impl fmt::Display for UeventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UeventError {}

fn bad(why: impl Into<String>) -> UeventError {
    UeventError(why.into())
}

/// Parses one message: `ACTION@DEVPATH\0` then `KEY=VALUE\0` pairs.
pub fn parse(buf: &[u8]) -> Result<Uevent, UeventError> {
    if buf.starts_with(b"libudev\0") {
        return Err(bad("a udev message, not a kernel uevent"));
    }
    let mut fields = buf.split(|b| *b == 0);
    let header = fields.next().unwrap_or_default();
    let header =
        std::str::from_utf8(header).map_err(|_| bad("the ACTION@DEVPATH header is not UTF-8"))?;
    let (action, devpath) = header
        .split_once('@')
        .ok_or_else(|| bad(format!("header {header:?} lacks ACTION@DEVPATH")))?;
    if action.is_empty() || !action.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(bad(format!("header {header:?} has no valid action")));
    }
    if !devpath.starts_with('/') {
        return Err(bad(format!(
            "header {header:?} has no absolute device path"
        )));
    }
    let mut env = BTreeMap::new();
    for field in fields {
        if field.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(field);
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| bad(format!("field {text:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad(format!("field {text:?} has an empty key")));
        }
        env.insert(k.to_string(), v.to_string());
    }
    for (key, header_value) in [("ACTION", action), ("DEVPATH", devpath)] {
        if let Some(v) = env.get(key) {
            if v != header_value {
                return Err(bad(format!("{key}={v} contradicts the header {header:?}")));
            }
        }
    }
    Ok(Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uevent::testing::wire;
    use crate::uevent::Change;
    use proptest::prelude::*;

    #[test]
    fn parses_a_mask_change_with_its_newline() {
        let mask = format!("0x{}", "f".repeat(64));
        let msg = wire(&[
            "change@/devices/ap",
            "ACTION=change",
            "DEVPATH=/devices/ap",
            "SUBSYSTEM=ap",
            &format!("APMASK={mask}\n"),
            "SEQNUM=1234",
        ]);
        let ev = parse(&msg).expect("valid");
        assert_eq!(ev.action, "change");
        assert_eq!(ev.devpath, "/devices/ap");
        assert_eq!(ev.get("APMASK"), Some(format!("{mask}\n").as_str()));
        assert_eq!(ev.get("SEQNUM"), Some("1234"));
        assert_eq!(ev.classify(), Change::Masks);
    }

    #[test]
    fn refuses_what_is_not_a_kernel_uevent() {
        for bad_msg in [
            &b""[..],
            b"\0",
            b"no-at-sign\0A=B\0",
            b"@/devices/ap\0",
            b"change@devices/ap\0",
            b"change@/devices/ap\0NOEQUALS\0",
            b"change@/devices/ap\0=value\0",
            b"change@/devices/ap\0ACTION=add\0",
            b"change@/devices/ap\0DEVPATH=/devices/other\0",
            b"libudev\0\xfe\xed\xca\xfe",
            b"ch\xffange@/devices/ap\0",
            b"CHANGE@/devices/ap\0",
        ] {
            assert!(
                parse(bad_msg).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad_msg)
            );
        }
    }

    #[test]
    fn tolerates_empty_fields_and_non_utf8_values() {
        let ev = parse(b"change@/devices/ap/card05\0\0SUBSYSTEM=ap\0X=\xff\0\0").expect("valid");
        assert_eq!(ev.get("SUBSYSTEM"), Some("ap"));
        assert_eq!(ev.get("X"), Some("\u{fffd}"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(ev) = parse(&bytes) {
                let _ = ev.classify();
            }
        }

        #[test]
        fn structured_garbage_never_panics(
            action in "[a-z]{0,8}",
            path in "(/devices(/ap(/card[0-9a-fA-F]{0,3}(/[0-9a-f.]{0,8})?)?|/vfio_ap/matrix(/[0-9a-f-]{0,40})?)?)?",
            keys in proptest::collection::vec(("[A-Z_]{0,10}", "[ -~\n]{0,20}"), 0..6),
        ) {
            let mut msg = format!("{action}@{path}").into_bytes();
            msg.push(0);
            for (k, v) in &keys {
                msg.extend_from_slice(format!("{k}={v}").as_bytes());
                msg.push(0);
            }
            if let Ok(ev) = parse(&msg) {
                let c = ev.classify();
                let _ = c.may_unblock_start();
            }
        }

        #[test]
        fn well_formed_messages_round_trip(
            action in "[a-z]{1,8}",
            keys in proptest::collection::btree_map("[A-Z]{1,10}", "[ -~\n]{0,20}", 0..6),
        ) {
            let mut msg = format!("{action}@/devices/ap").into_bytes();
            msg.push(0);
            for (k, v) in &keys {
                if k == "ACTION" || k == "DEVPATH" { continue; }
                msg.extend_from_slice(format!("{k}={v}").as_bytes());
                msg.push(0);
            }
            let ev = parse(&msg).expect("well formed");
            prop_assert_eq!(ev.action, action);
            for (k, v) in &keys {
                if k == "ACTION" || k == "DEVPATH" { continue; }
                prop_assert_eq!(ev.env.get(k), Some(v));
            }
        }
    }
}
