//! Where each peer's HTTP (and membership) address is: filled from `cluster.nodes` and then by
//! membership, read by both transports on every call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use tessera_cluster::NodeId;

/// Node id to address, shared by the transports and membership. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Directory(Arc<RwLock<HashMap<NodeId, SocketAddr>>>);

impl Directory {
    pub fn new(entries: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> Self {
        Self(Arc::new(RwLock::new(entries.into_iter().collect())))
    }

    pub fn get(&self, node: &str) -> Option<SocketAddr> {
        // Plain ids and addresses: a poisoned lock still guards valid data.
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .copied()
    }

    /// Records `node` at `addr`; returns whether that changed anything.
    pub fn set(&self, node: &str, addr: SocketAddr) -> bool {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(node.to_owned(), addr) != Some(addr)
    }

    /// Every known node and address, by node id.
    pub fn all(&self) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<_> = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(node, addr)| (node.clone(), *addr))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_moves_addresses() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let directory = Directory::new([("n1".to_owned(), a)]);
        assert_eq!(directory.get("n1"), Some(a));
        assert!(!directory.set("n1", a));
        assert!(directory.set("n1", b));
        assert!(directory.clone().set("n2", a));
        assert_eq!(
            directory.all(),
            vec![("n1".to_owned(), b), ("n2".to_owned(), a)]
        );
        assert_eq!(directory.get("n3"), None);
    }
}
