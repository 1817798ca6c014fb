//! IEEE 802.11 records (bare, under radiotap, under PPI): a data frame whose payload is LLC/SNAP-encapsulated
//! becomes the Ethernet frame it bridges to (destination and source from the 802.11 address fields as ToDS /
//! FromDS place them); anything else — management and control frames, null data, encrypted payloads — is
//! refused, saying what it was. Never panics: every field is read through bounds checks.

/// What an 802.11 record is, once looked at: an Ethernet frame, or why not.
pub type Bridged = Result<Vec<u8>, String>;

const LLC_SNAP: [u8; 3] = [0xaa, 0xaa, 0x03];
/// RFC 1042 and 802.1H (bridge tunnel) OUIs: both carry an Ethertype after them.
const SNAP_OUIS: [[u8; 3]; 2] = [[0, 0, 0], [0, 0, 0xf8]];

/// A bare 802.11 frame (`LINKTYPE_IEEE802_11`, 105); `fcs` when its last 4 bytes are the frame check sequence.
pub fn ieee80211(data: &[u8], fcs: bool) -> Bridged {
    let data = if fcs {
        data.get(..data.len().saturating_sub(4)).unwrap_or(data)
    } else {
        data
    };
    let (Some(&fc0), Some(&fc1)) = (data.first(), data.get(1)) else {
        return Err(format!(
            "{} bytes is shorter than an 802.11 header",
            data.len()
        ));
    };
    let (kind, subtype) = ((fc0 >> 2) & 3, fc0 >> 4);
    match kind {
        0 => {
            return Err(format!(
                "IEEE 802.11 {} (management frame): no IP packet",
                management(subtype)
            ));
        }
        1 => {
            return Err(format!(
                "IEEE 802.11 {} (control frame): no IP packet",
                control(subtype)
            ));
        }
        2 => {}
        _ => {
            return Err(format!(
                "IEEE 802.11 frame of reserved type 3 (subtype {subtype})"
            ));
        }
    }
    if subtype & 0x4 != 0 {
        return Err("IEEE 802.11 null data frame: no payload".into());
    }
    if fc1 & 0x40 != 0 {
        return Err(
            "IEEE 802.11 data frame, protected (encrypted): its payload cannot be read".into(),
        );
    }
    let (to_ds, from_ds) = (fc1 & 1 != 0, fc1 & 2 != 0);
    let qos = subtype & 0x8 != 0;
    let mut header = 24 + if to_ds && from_ds { 6 } else { 0 };
    if qos {
        // QoS control, and the HT control field when the Order bit is set on a QoS frame.
        header += 2 + if fc1 & 0x80 != 0 { 4 } else { 0 };
    }
    let addr = |n: usize| data.get(4 + 6 * n..10 + 6 * n);
    let (da, sa) = match (to_ds, from_ds) {
        (false, false) => (addr(0), addr(1)),
        (true, false) => (addr(2), addr(1)),
        (false, true) => (addr(0), addr(2)),
        (true, true) => (addr(2), data.get(24..30)),
    };
    let (Some(da), Some(sa), Some(body)) = (da, sa, data.get(header..)) else {
        return Err(format!(
            "IEEE 802.11 data frame of {} bytes is shorter than its {header}-byte header",
            data.len()
        ));
    };
    let snap = body.get(..3) == Some(&LLC_SNAP[..])
        && body
            .get(3..6)
            .is_some_and(|oui| SNAP_OUIS.iter().any(|o| o == oui));
    if !snap || body.len() < 8 {
        return Err(
            "IEEE 802.11 data frame without an LLC/SNAP header: no Ethertype to bridge".into(),
        );
    }
    let mut frame = Vec::with_capacity(14 + body.len() - 8);
    frame.extend_from_slice(da);
    frame.extend_from_slice(sa);
    frame.extend_from_slice(&body[6..]);
    Ok(frame)
}

/// `LINKTYPE_IEEE802_11_RADIOTAP` (127): the radiotap header's length, and its Flags field for the FCS.
pub fn radiotap(data: &[u8]) -> Bridged {
    let Some(len) = data
        .get(2..4)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return Err(format!(
            "{} bytes is shorter than a radiotap header",
            data.len()
        ));
    };
    let Some(frame) = data.get(len..).filter(|_| len >= 8) else {
        return Err(format!(
            "radiotap header of {len} bytes does not fit the record"
        ));
    };
    ieee80211(frame, radiotap_fcs(data, len))
}

/// Does the radiotap header say the frame ends with its FCS? Field 0 (TSFT, 8 bytes aligned to 8) comes
/// before field 1 (Flags, bit 0x10: FCS at end); the fields start after the chain of present words.
fn radiotap_fcs(data: &[u8], len: usize) -> bool {
    let word = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(present) = word(4) else {
        return false;
    };
    let mut at = 8;
    // Extended present words (bit 31) follow the first.
    while word(at - 4).is_some_and(|w| w & 0x8000_0000 != 0) && at < len {
        at += 4;
    }
    if present & 1 != 0 {
        at = at.next_multiple_of(8) + 8;
    }
    present & 2 != 0 && at < len && data.get(at).is_some_and(|f| f & 0x10 != 0)
}

/// `LINKTYPE_PPI` (192): an 802.11 frame after the PPI header (its 802.11-common field says if an FCS ends it).
pub fn ppi(data: &[u8]) -> Bridged {
    let (Some(len), Some(dlt)) = (
        data.get(2..4)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
        data.get(4..8)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    ) else {
        return Err(format!("{} bytes is shorter than a PPI header", data.len()));
    };
    if dlt != 105 {
        return Err(format!("PPI record of link type {dlt}, not 802.11"));
    }
    let Some(frame) = data.get(len..).filter(|_| len >= 8) else {
        return Err(format!("PPI header of {len} bytes does not fit the record"));
    };
    // Fields: type (u16), length (u16), data; 802.11-common (type 2) has its flags at data offset 8.
    let mut at = 8;
    let mut fcs = false;
    while let (Some(t), Some(n)) = (
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]])),
        data.get(at + 2..at + 4)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
    ) {
        if at + 4 + n > len {
            break;
        }
        if t == 2 {
            fcs = data.get(at + 12).is_some_and(|f| f & 1 != 0);
        }
        at += 4 + n;
    }
    ieee80211(frame, fcs)
}

fn management(subtype: u8) -> String {
    let name = match subtype {
        0 => "association request",
        1 => "association response",
        4 => "probe request",
        5 => "probe response",
        8 => "beacon",
        10 => "disassociation",
        11 => "authentication",
        12 => "deauthentication",
        13 => "action",
        _ => return format!("subtype {subtype}"),
    };
    name.into()
}

fn control(subtype: u8) -> String {
    let name = match subtype {
        8 => "block ack request",
        9 => "block ack",
        11 => "RTS",
        12 => "CTS",
        13 => "ACK",
        _ => return format!("subtype {subtype}"),
    };
    name.into()
}
