//! MD5's constants (RFC 1321, section 3.4), shared by every backend.

/// 32-bit words in one 64-byte block.
pub(crate) const BLOCK_WORDS: usize = 16;

/// The chaining value before the first block (RFC 1321, section 3.3).
pub(crate) const INITIAL_STATE: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Per-step additive constants: `floor(abs(sin(i + 1)) * 2^32)`.
pub(crate) const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// Left-rotation amount of each step.
pub(crate) const SHIFT: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, //
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, //
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, //
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// Which message word each step adds.
pub(crate) const WORD: [usize; 64] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, //
    1, 6, 11, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, //
    5, 8, 11, 14, 1, 4, 7, 10, 13, 0, 3, 6, 9, 12, 15, 2, //
    0, 7, 14, 5, 12, 3, 10, 1, 8, 15, 6, 13, 4, 11, 2, 9,
];

/// Expands to MD5's 64 steps (RFC 1321, section 3.4), calling the four step macros given (one per
/// round function) with: the context tokens in brackets, then the registers in
/// their rotated roles, the message word, the step number (for the constant)
/// and the rotation.
macro_rules! md5_steps {
    (
        [$($ctx:tt)*], $f:ident, $g:ident, $h:ident, $i:ident,
        $a:ident, $b:ident, $c:ident, $d:ident
    ) => {
        $f!($($ctx)* $a, $b, $c, $d, 0, 0, 7);
        $f!($($ctx)* $d, $a, $b, $c, 1, 1, 12);
        $f!($($ctx)* $c, $d, $a, $b, 2, 2, 17);
        $f!($($ctx)* $b, $c, $d, $a, 3, 3, 22);
        $f!($($ctx)* $a, $b, $c, $d, 4, 4, 7);
        $f!($($ctx)* $d, $a, $b, $c, 5, 5, 12);
        $f!($($ctx)* $c, $d, $a, $b, 6, 6, 17);
        $f!($($ctx)* $b, $c, $d, $a, 7, 7, 22);
        $f!($($ctx)* $a, $b, $c, $d, 8, 8, 7);
        $f!($($ctx)* $d, $a, $b, $c, 9, 9, 12);
        $f!($($ctx)* $c, $d, $a, $b, 10, 10, 17);
        $f!($($ctx)* $b, $c, $d, $a, 11, 11, 22);
        $f!($($ctx)* $a, $b, $c, $d, 12, 12, 7);
        $f!($($ctx)* $d, $a, $b, $c, 13, 13, 12);
        $f!($($ctx)* $c, $d, $a, $b, 14, 14, 17);
        $f!($($ctx)* $b, $c, $d, $a, 15, 15, 22);

        $g!($($ctx)* $a, $b, $c, $d, 1, 16, 5);
        $g!($($ctx)* $d, $a, $b, $c, 6, 17, 9);
        $g!($($ctx)* $c, $d, $a, $b, 11, 18, 14);
        $g!($($ctx)* $b, $c, $d, $a, 0, 19, 20);
        $g!($($ctx)* $a, $b, $c, $d, 5, 20, 5);
        $g!($($ctx)* $d, $a, $b, $c, 10, 21, 9);
        $g!($($ctx)* $c, $d, $a, $b, 15, 22, 14);
        $g!($($ctx)* $b, $c, $d, $a, 4, 23, 20);
        $g!($($ctx)* $a, $b, $c, $d, 9, 24, 5);
        $g!($($ctx)* $d, $a, $b, $c, 14, 25, 9);
        $g!($($ctx)* $c, $d, $a, $b, 3, 26, 14);
        $g!($($ctx)* $b, $c, $d, $a, 8, 27, 20);
        $g!($($ctx)* $a, $b, $c, $d, 13, 28, 5);
        $g!($($ctx)* $d, $a, $b, $c, 2, 29, 9);
        $g!($($ctx)* $c, $d, $a, $b, 7, 30, 14);
        $g!($($ctx)* $b, $c, $d, $a, 12, 31, 20);

        $h!($($ctx)* $a, $b, $c, $d, 5, 32, 4);
        $h!($($ctx)* $d, $a, $b, $c, 8, 33, 11);
        $h!($($ctx)* $c, $d, $a, $b, 11, 34, 16);
        $h!($($ctx)* $b, $c, $d, $a, 14, 35, 23);
        $h!($($ctx)* $a, $b, $c, $d, 1, 36, 4);
        $h!($($ctx)* $d, $a, $b, $c, 4, 37, 11);
        $h!($($ctx)* $c, $d, $a, $b, 7, 38, 16);
        $h!($($ctx)* $b, $c, $d, $a, 10, 39, 23);
        $h!($($ctx)* $a, $b, $c, $d, 13, 40, 4);
        $h!($($ctx)* $d, $a, $b, $c, 0, 41, 11);
        $h!($($ctx)* $c, $d, $a, $b, 3, 42, 16);
        $h!($($ctx)* $b, $c, $d, $a, 6, 43, 23);
        $h!($($ctx)* $a, $b, $c, $d, 9, 44, 4);
        $h!($($ctx)* $d, $a, $b, $c, 12, 45, 11);
        $h!($($ctx)* $c, $d, $a, $b, 15, 46, 16);
        $h!($($ctx)* $b, $c, $d, $a, 2, 47, 23);

        $i!($($ctx)* $a, $b, $c, $d, 0, 48, 6);
        $i!($($ctx)* $d, $a, $b, $c, 7, 49, 10);
        $i!($($ctx)* $c, $d, $a, $b, 14, 50, 15);
        $i!($($ctx)* $b, $c, $d, $a, 5, 51, 21);
        $i!($($ctx)* $a, $b, $c, $d, 12, 52, 6);
        $i!($($ctx)* $d, $a, $b, $c, 3, 53, 10);
        $i!($($ctx)* $c, $d, $a, $b, 10, 54, 15);
        $i!($($ctx)* $b, $c, $d, $a, 1, 55, 21);
        $i!($($ctx)* $a, $b, $c, $d, 8, 56, 6);
        $i!($($ctx)* $d, $a, $b, $c, 15, 57, 10);
        $i!($($ctx)* $c, $d, $a, $b, 6, 58, 15);
        $i!($($ctx)* $b, $c, $d, $a, 13, 59, 21);
        $i!($($ctx)* $a, $b, $c, $d, 4, 60, 6);
        $i!($($ctx)* $d, $a, $b, $c, 11, 61, 10);
        $i!($($ctx)* $c, $d, $a, $b, 2, 62, 15);
        $i!($($ctx)* $b, $c, $d, $a, 9, 63, 21);
    };
}
pub(crate) use md5_steps;
