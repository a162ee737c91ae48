fn matmul(a: &Vec<i64>, b: &Vec<i64>, n: usize) -> Vec<i64> {
    let mut out = vec![0i64; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut s: i64 = 0;
            for k in 0..n {
                s += a[i * n + k] * b[k * n + j];
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn main() {
    let m: Vec<i64> = vec![1, 1, 1, 0];
    let mut p: Vec<i64> = vec![1, 0, 0, 1];
    for step in 0..100 {
        p = matmul(&p, &m, 2);
        if step % 20 == 0 {
            println!("{:?}", p);
        }
    }
}
