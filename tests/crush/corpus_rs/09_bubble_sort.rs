fn sort(v: &mut Vec<i64>) {
    let n = v.len();
    for i in 0..n {
        for j in 0..n - 1 - i {
            if v[j] > v[j + 1] {
                v.swap(j, j + 1);
            }
        }
    }
}

fn main() {
    let mut v: Vec<i64> = vec![5, -3, 9, 1, 7, 2, 8, 0];
    sort(&mut v);
    println!("{:?}", v);
    let mut w: Vec<i64> = Vec::new();
    sort(&mut w);
    println!("{:?} {}", w, w.is_empty());
}
