//! TCP relays on 127.0.0.1 between till C and its peers: cutting them is a real network cut.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use tillmesh_net::{Multiaddr, PeerId, multiaddr::Protocol};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::POLL;

/// A TCP relay on 127.0.0.1 in front of one peer's libp2p listener. Till C reaches its peers
/// only through relays, so cutting them is a real network cut: its connections drop and its
/// re-dials hang, as over a pulled cable, until the relays heal.
pub(super) struct Relay {
    /// Where to dial the peer through the relay (`/ip4/127.0.0.1/tcp/<relay>/p2p/<peer>`).
    pub(super) address: Multiaddr,
    pub(super) open: watch::Sender<bool>,
    pub(super) accept: JoinHandle<()>,
}

impl Relay {
    /// A relay to `peer` (`/ip4/…/tcp/…/p2p/…`).
    pub(super) async fn start(peer: &Multiaddr) -> anyhow::Result<Relay> {
        let (target, peer_id) =
            socket_of(peer).with_context(|| format!("{peer} is not /ip4/…/tcp/…/p2p/…"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let (open, is_open) = watch::channel(true);
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((inbound, _)) => {
                        tokio::spawn(relay(inbound, target, is_open.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "relay: accept failed");
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        });
        let address = Multiaddr::empty()
            .with(Protocol::Ip4(Ipv4Addr::LOCALHOST))
            .with(Protocol::Tcp(port))
            .with(Protocol::P2p(peer_id));
        Ok(Relay { address, open, accept })
    }

    /// Cuts (`false`) or heals (`true`) the link.
    pub(super) fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Carries one connection while the link is up: a connection made while it is cut waits until
/// it heals; cutting drops both sides.
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut open: watch::Receiver<bool>) {
    if open.wait_for(|open| *open).await.is_err() {
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    // Frames are small: no Nagle delay on either leg.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}

/// The TCP address and peer id of `/ip4/…/tcp/…/p2p/…`.
pub(super) fn socket_of(address: &Multiaddr) -> Option<(SocketAddr, PeerId)> {
    let (mut ip, mut port, mut peer) = (None, None, None);
    for protocol in address.iter() {
        match protocol {
            Protocol::Ip4(address) => ip = Some(address),
            Protocol::Tcp(number) => port = Some(number),
            Protocol::P2p(id) => peer = Some(id),
            _ => {}
        }
    }
    Some((SocketAddr::from((ip?, port?)), peer?))
}
