//! The smoltcp `Device` the stack sees: it holds at most the one frame being processed, and collects everything
//! smoltcp transmits, so a processing window's output is exactly what this device gathered during it.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;

/// Ethernet MTU as smoltcp counts it for `Medium::Ethernet`: the IP MTU plus the 14-byte header.
pub const ETHERNET_MTU: usize = 1514;

/// A frame smoltcp emitted, with the packet-meta id it set (UDP datagrams carry the id the app gave them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub frame: Vec<u8>,
    pub meta_id: u32,
}

#[derive(Debug)]
pub struct StepDevice {
    pending: Option<(Vec<u8>, u32)>,
    emitted: Vec<Emitted>,
    caps: DeviceCapabilities,
}

impl StepDevice {
    pub fn new() -> Self {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_MTU;
        StepDevice {
            pending: None,
            emitted: Vec::new(),
            caps,
        }
    }

    /// Offer exactly one frame to the next `poll_ingress_single`. `meta_id` reaches UDP sockets' metadata.
    pub fn offer(&mut self, frame: Vec<u8>, meta_id: u32) {
        self.pending = Some((frame, meta_id));
    }

    /// Everything transmitted since the last call.
    pub fn take_emitted(&mut self) -> Vec<Emitted> {
        std::mem::take(&mut self.emitted)
    }

    pub fn has_emitted(&self) -> bool {
        !self.emitted.is_empty()
    }
}

impl Default for StepDevice {
    fn default() -> Self {
        Self::new()
    }
}

pub struct StepRx {
    frame: Vec<u8>,
    meta: PacketMeta,
}

pub struct StepTx<'a> {
    out: &'a mut Vec<Emitted>,
    meta_id: u32,
}

impl phy::RxToken for StepRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
    fn meta(&self) -> PacketMeta {
        self.meta
    }
}

impl phy::TxToken for StepTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.out.push(Emitted {
            frame,
            meta_id: self.meta_id,
        });
        r
    }
    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta_id = meta.id;
    }
}

impl Device for StepDevice {
    type RxToken<'a> = StepRx;
    type TxToken<'a> = StepTx<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(StepRx, StepTx<'_>)> {
        let (frame, id) = self.pending.take()?;
        let mut meta = PacketMeta::default();
        meta.id = id;
        Some((
            StepRx { frame, meta },
            StepTx {
                out: &mut self.emitted,
                meta_id: 0,
            },
        ))
    }

    fn transmit(&mut self, _t: Instant) -> Option<StepTx<'_>> {
        Some(StepTx {
            out: &mut self.emitted,
            meta_id: 0,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
