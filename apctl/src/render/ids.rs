//! How ids look to people: adapters in decimal (`5,6`), domains in hex
//! (`0x04,0xab`), runs of three or more as ranges, APQNs as lszcrypt shows
//! them (`05.0004`). Every form parses back as a LIST.

/// Adapters: decimal, e.g. `5,6` or `1-4,7`; `-` for none.
pub fn adapters(ids: &[u32]) -> String {
    compact(ids, |id| id.to_string())
}

/// Domains and control domains: hex, e.g. `0x04,0xab` or `0x00-0xff`; `-` for none.
pub fn domains(ids: &[u32]) -> String {
    compact(ids, |id| format!("0x{id:02x}"))
}

/// An APQN `05.0004`.
pub fn apqn(adapter: u32, domain: u32) -> String {
    format!("{adapter:02x}.{domain:04x}")
}

/// Sorted, deduplicated copy: the bus promises ascending lists, the
/// printout must not depend on it.
pub fn ascending(ids: &[u32]) -> Vec<u32> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

fn compact(ids: &[u32], show: impl Fn(u32) -> String) -> String {
    let ids = ascending(ids);
    if ids.is_empty() {
        return "-".to_string();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", show(ids[i]), show(ids[j])));
        } else {
            for &id in &ids[i..=j] {
                parts.push(show(id));
            }
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(adapters(&[6, 5]), "5,6");
        assert_eq!(adapters(&[1, 2, 3, 4, 7]), "1-4,7");
        assert_eq!(adapters(&[]), "-");
        assert_eq!(domains(&[4, 0xab]), "0x04,0xab");
        assert_eq!(domains(&[0x47, 0xff]), "0x47,0xff");
        assert_eq!(domains(&(0..=255).collect::<Vec<_>>()), "0x00-0xff");
        assert_eq!(apqn(5, 4), "05.0004");
        assert_eq!(apqn(0xa, 0xff), "0a.00ff");
    }

    #[test]
    fn printed_lists_parse_back() {
        for ids in [
            vec![5u32, 6],
            vec![0, 1, 2, 9, 0x47, 0xff],
            (0..=255).collect(),
        ] {
            for text in [adapters(&ids), domains(&ids)] {
                let back = libap::ids::parse_id_list(&text).expect("parses back");
                assert_eq!(
                    back.iter().map(u32::from).collect::<Vec<_>>(),
                    ids,
                    "{text}"
                );
            }
        }
    }
}
