fn sieve(n: usize) -> Vec<usize> {
    let mut is = vec![true; n + 1];
    is[0] = false;
    is[1] = false;
    let mut i: usize = 2;
    while i * i <= n {
        if is[i] {
            let mut j = i * i;
            while j <= n {
                is[j] = false;
                j += i;
            }
        }
        i += 1;
    }
    let mut out: Vec<usize> = Vec::new();
    for k in 0..=n {
        if is[k] {
            out.push(k);
        }
    }
    out
}

fn main() {
    let p = sieve(100);
    println!("{} primes: {:?}", p.len(), p);
}
