//! Object name rules, as kube-apiserver's apimachinery validation states them.
