// {:?} of a String escapes as char::escape_debug does: controls, format characters, combining marks
fn main() {
    let s = String::from("é\u{7f}\u{200b}\u{301}a\u{301}\u{0}\r'\"\\😀\u{a0}\u{2028}\u{ad}\u{e000}");
    println!("{:?}", s);
    println!("{:?}", vec![String::from("a'b")]);
}
