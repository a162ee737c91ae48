fn hanoi(n: u32, from: i32, to: i32, via: i32, moves: &mut Vec<i32>) {
    if n == 0 {
        return;
    }
    hanoi(n - 1, from, via, to, moves);
    moves.push(from * 10 + to);
    hanoi(n - 1, via, to, from, moves);
}

fn main() {
    let mut moves: Vec<i32> = Vec::new();
    hanoi(10, 1, 3, 2, &mut moves);
    println!("{} moves, first {} last {}", moves.len(), moves[0], moves[moves.len() - 1]);
    let mut counts = vec![0u32; 40];
    for m in moves.iter() {
        counts[*m as usize] += 1;
    }
    println!("{} {} {}", counts[13], counts[12], counts[32]);
}
