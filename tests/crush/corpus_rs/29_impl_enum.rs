#[derive(Debug, Clone, PartialEq)]
enum Dir { North, East, South, West }
impl Dir {
    fn turn(&self) -> Dir {
        match self { Dir::North => Dir::East, Dir::East => Dir::South, Dir::South => Dir::West, Dir::West => Dir::North }
    }
}
#[derive(Debug)]
struct Grid { w: usize, h: usize, cells: Vec<u8> }
impl Grid {
    fn new(w: usize, h: usize) -> Grid { Grid { w, h, cells: vec![0u8; w * h] } }
    fn set(&mut self, x: usize, y: usize, v: u8) { self.cells[y * self.w + x] = v; }
    fn count(&self) -> usize { let mut n = 0; for c in self.cells.iter() { if *c > 0 { n += 1; } } n }
}
fn main() {
    let mut d = Dir::North;
    for _ in 0..5 { d = d.turn(); }
    println!("{:?}", d);
    let mut g = Grid::new(4, 3);
    g.set(1, 1, 7); g.set(3, 2, 1);
    println!("{} {} {}", g.count(), g.h, g.cells.len());
    let x: i64 = -17;
    println!("{} {} {} {}", x / 5, x % 5, x.abs(), x.pow(3));
    let y: u64 = 1 << 63;
    println!("{} {}", y, y >> 62);
    let v: Vec<String> = vec![String::from("b"), String::from("a")];
    let mut w = v.clone();
    w.sort();
    println!("{:?} {:?} {}", v, w, v == w);
    let t = if x < 0 { "neg" } else { "pos" };
    println!("{t:>6}|{:<4}|{:^7.2}|", 3u8, -1.005);
    let mut s = String::new();
    let mut i: u32 = 0;
    while i < 3 { s = s + &format!("[{}]", i); i += 1; }
    println!("{}", s);
    let big: i128 = 170141183460469231731687303715884105727;
    println!("{}", big);
    let z: u32 = 3;
    println!("{}", z.pow(20));
}
