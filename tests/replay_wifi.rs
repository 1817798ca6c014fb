//! 802.11 captures (monitor mode: bare, and under radiotap with an FCS): data frames with LLC/SNAP payloads
//! are bridged to Ethernet and play; a beacon is refused at the wire as what it is, never dissected as
//! Ethernet. tests/data/make.sh makes both from `http-get.pcap`.

mod common;

use std::path::Path;

use common::follow::{digest, tcp_stream};
use common::tshark_available;

#[test]
fn an_80211_capture_plays_its_data_frames_and_names_its_beacon() {
    if !tshark_available() {
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // The beacon's record: 42 bytes, and radiotap's 9 and the FCS's 4.
    for (file, linktype, len) in [
        (
            "wifi-radiotap.pcap",
            "link type 127 (IEEE 802.11 with radiotap)",
            55,
        ),
        ("wifi-bare.pcap", "link type 105 (IEEE 802.11)", 42),
    ] {
        let path = data.join(file);
        let (summary, doc) = common::replay_json(&path, &["--max-speed"]);
        let followed = tcp_stream(&path, 0).expect("stream 0");
        let conns = doc["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 1, "{file}: {summary}");
        assert_eq!(conns[0]["app_read"], digest(&followed.from0), "{file}");
        assert_eq!(conns[0]["app_written"], digest(&followed.from1), "{file}");
        let beacon = &doc["packets"].as_array().unwrap()[0];
        assert_eq!(beacon["capture_frame"], 1);
        assert_eq!(
            beacon["summary"],
            format!("IEEE 802.11 beacon (management frame): no IP packet, len={len}"),
            "{file}"
        );
        assert_eq!(beacon["outcome"]["code"], "not_injectable");
        assert!(
            summary.contains("  wire           not_injectable         1\n"),
            "{file}: only the beacon is refused:\n{summary}"
        );
        assert!(
            summary.contains(&format!(
                "not played: 1 record of {linktype} — not injectable: IEEE 802.11 beacon (management \
                 frame): no IP packet"
            )),
            "{file}: {summary}"
        );
        let records = &doc["replay"]["records_not_played"][0];
        assert_eq!(records["records"], 1, "{file}");
    }
}
