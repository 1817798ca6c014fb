//! The TAP device: open it (creating it if missing) with tun-tap in raw-frame mode (`IFF_NO_PI`), make its fd
//! non-blocking, and, when `--host-ip`/`--host-ip6` are given, address the kernel side and bring it up.
//! Configuration uses ioctls on an AF_INET or AF_INET6 socket (SIOCSIFADDR, SIOCSIFNETMASK, SIOCGIFINDEX,
//! SIOCGIFFLAGS/SIOCSIFFLAGS), so a live run needs no `ip` binary. Errors are one sentence that says what to do.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tun_tap::{Iface, Mode};

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error(
        "cannot open TAP device {name}: permission denied (CAP_NET_ADMIN needed) — run as root, or create the device once with `ip tuntap add {name} mode tap user {user}` and run pktpath as that user"
    )]
    Permission { name: String, user: String },
    #[error(
        "cannot open TAP device {name}: /dev/net/tun does not exist — load the tun module (`modprobe tun`)"
    )]
    NoTunDevice { name: String },
    #[error(
        "cannot open TAP device {name}: it is busy (another process has it open, or it is not a TAP) — pick another --tap name"
    )]
    Busy { name: String },
    #[error("cannot open TAP device {name}: {source}")]
    Other {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot configure {name} ({what}): permission denied — run as root, or set it up yourself (`ip addr add {cidr} dev {name}; ip link set {name} up`) and leave out --host-ip"
    )]
    ConfigurePermission {
        name: String,
        what: &'static str,
        cidr: String,
    },
    #[error("cannot configure {name} ({what}): {source}")]
    Configure {
        name: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The user to name in the permission message.
fn user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "USER".into())
}

/// What an error opening `/dev/net/tun` or `TUNSETIFF` means for the user.
pub fn open_error(name: &str, e: io::Error) -> TapError {
    let name = name.to_string();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => TapError::Permission {
            name,
            user: user_name(),
        },
        Some(libc::ENOENT) | Some(libc::ENODEV) => TapError::NoTunDevice { name },
        Some(libc::EBUSY) | Some(libc::EINVAL) => TapError::Busy { name },
        _ => TapError::Other { name, source: e },
    }
}

pub struct Tap {
    iface: Iface,
}

impl Tap {
    /// Open (or create) the TAP device `name`, non-blocking, raw Ethernet frames.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        let iface = Iface::without_packet_info(name, Mode::Tap).map_err(|e| open_error(name, e))?;
        iface.set_non_blocking().map_err(|source| TapError::Other {
            name: name.into(),
            source,
        })?;
        Ok(Tap { iface })
    }

    /// The device's name as the kernel knows it.
    pub fn name(&self) -> &str {
        self.iface.name()
    }

    pub fn fd(&self) -> i32 {
        self.iface.as_raw_fd()
    }

    /// One frame, or `WouldBlock`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        self.iface.send(frame)
    }

    /// Give the kernel side of the device `addr/prefix` and bring it up.
    pub fn configure_host(&self, addr: Ipv4Addr, prefix: u8) -> Result<(), TapError> {
        let name = self.name();
        let fail = configure_error(name, format!("{addr}/{prefix}"));
        let sock = config_socket(libc::AF_INET).map_err(|e| fail("socket", e))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_addr = sockaddr_v4(addr);
        ioctl(&sock, libc::SIOCSIFADDR, &mut req).map_err(|e| fail("address", e))?;
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_netmask = sockaddr_v4(Ipv4Addr::from(mask));
        ioctl(&sock, libc::SIOCSIFNETMASK, &mut req).map_err(|e| fail("netmask", e))?;
        link_up(&sock, name).map_err(|e| fail("link up", e))
    }

    /// Give the kernel side of the device the IPv6 address `addr/prefix` too, and bring it up.
    pub fn configure_host6(&self, addr: Ipv6Addr, prefix: u8) -> Result<(), TapError> {
        let name = self.name();
        let fail = configure_error(name, format!("{addr}/{prefix}"));
        let sock = config_socket(libc::AF_INET6).map_err(|e| fail("socket", e))?;
        let mut req = ifreq(name);
        ioctl(&sock, libc::SIOCGIFINDEX, &mut req).map_err(|e| fail("index", e))?;
        // SAFETY: SIOCGIFINDEX filled the index member of the union.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        let mut req6 = libc::in6_ifreq {
            ifr6_addr: libc::in6_addr {
                s6_addr: addr.octets(),
            },
            ifr6_prefixlen: u32::from(prefix),
            ifr6_ifindex: index,
        };
        // SAFETY: `req6` is a valid in6_ifreq, which SIOCSIFADDR on an AF_INET6 socket reads.
        let r = unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCSIFADDR as _,
                &mut req6 as *mut libc::in6_ifreq,
            )
        };
        if r < 0 {
            return Err(fail("IPv6 address", io::Error::last_os_error()));
        }
        link_up(&sock, name).map_err(|e| fail("link up", e))
    }
}

/// Makes a configuration error for `name`, naming the address being set in the permission message.
fn configure_error(name: &str, cidr: String) -> impl Fn(&'static str, io::Error) -> TapError {
    let name = name.to_string();
    move |what, source| match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => TapError::ConfigurePermission {
            name: name.clone(),
            what,
            cidr: cidr.clone(),
        },
        _ => TapError::Configure {
            name: name.clone(),
            what,
            source,
        },
    }
}

/// A datagram socket of `family` to carry interface ioctls.
fn config_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a plain socket call; the fd is owned at once.
    let raw = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn link_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &b) in req
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = b as libc::c_char;
    }
    req
}

fn sockaddr_v4(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a valid ifreq for these SIOC* requests, which read or fill it in place.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_what_to_do_on_one_line() {
        let e = open_error("tp9", io::Error::from_raw_os_error(libc::EPERM));
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("run as root"), "{msg}");
        assert!(msg.contains("ip tuntap add tp9 mode tap user"), "{msg}");
        assert!(matches!(
            open_error("x", io::Error::from_raw_os_error(libc::EBUSY)),
            TapError::Busy { .. }
        ));
    }
}
