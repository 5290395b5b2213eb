//! Switches that plant known bugs (feature `planted-bugs`) in the document rules and in the mesh
//! core (`tillmesh-mesh`, whose feature of the same name turns this one on), so that the
//! simulator's tests can show that each one is caught by an invariant with some seed. A switch
//! holds on the thread that set it, while its [`Planted`] guard lives: tests running side by side
//! do not see each other's bugs. No build that ships has the feature.

use std::cell::Cell;

/// Which bugs are planted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Documents one peer brings are not pushed on to the other peers.
    pub drop_relay: bool,
    /// A peer is admitted on any entry naming its peer id: unsigned or revoked ones too.
    pub skip_admission_check: bool,
    /// A request is answered even when the documents it brought were not kept, its ranges
    /// answered before their commit is known.
    pub answer_before_durable: bool,
    /// A settlement counts without a valid signature by HQ's key.
    pub accept_unsigned_settlement: bool,
}

thread_local! {
    static PLANTED: Cell<Bugs> = const {
        Cell::new(Bugs {
            drop_relay: false,
            skip_admission_check: false,
            answer_before_durable: false,
            accept_unsigned_settlement: false,
        })
    };
}

/// Plants `bugs` on this thread until the guard is dropped.
#[must_use = "the bugs are planted only while the guard lives"]
pub fn plant(bugs: Bugs) -> Planted {
    PLANTED.with(|planted| planted.set(bugs));
    Planted(())
}

/// Removes the planted bugs when dropped.
#[derive(Debug)]
pub struct Planted(());

impl Drop for Planted {
    fn drop(&mut self) {
        PLANTED.with(|planted| planted.set(Bugs::default()));
    }
}

/// The bugs planted on this thread.
pub fn planted() -> Bugs {
    PLANTED.with(Cell::get)
}
