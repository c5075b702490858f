//! kube-rs against kubecache. Everything is in `tests/`: this crate exists so that kube (a
//! large dependency) is compiled only for this suite, never for the server's own builds.
