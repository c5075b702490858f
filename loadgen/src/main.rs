fn main() {
    eprintln!("kubecache-loadgen: scenarios arrive with the load-generator issue");
}
