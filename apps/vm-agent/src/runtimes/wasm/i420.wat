;; RGBA -> I420 (yuv420p), BT.601 limited range, in WASM SIMD: what the H264 encoder takes, made in
;; the guest thread so that ffmpeg neither reads 3.6 MB per 720p picture nor converts it (swscale).
;; Built into i420-module.ts by scripts/build-wat.js (npm run build); see i420.ts for the layout.
;; bgrx_to_rgba: an X server's 32-bit pixels (little-endian 0xXXRRGGBB: B, G, R, pad) to opaque
;; RGBA in place, for LINUX_X11 pictures (x11/framebuffer.ts), before or instead of the conversion.
;;
;; Per pixel (integers, the same in the scalar tail and in i420.ts's reference):
;;   Y = (66 R + 129 G + 25 B + 128) >> 8 + 16
;; per 2x2 block, on the rounded means Rm, Gm, Bm of its 4 pixels:
;;   U = (-38 Rm - 74 Gm + 112 Bm + 128) >> 8 + 128
;;   V = (112 Rm - 94 Gm - 18 Bm + 128) >> 8 + 128
;; Sums stay in 16 bits: Y's before the shift is at most 60,324; U's and V's are taken with +32768
;; so that they are never negative (4,591..61,456) and a logical shift is the floor.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; width, height even; src RGBA rows of width*4 bytes; y rows of width, u and v rows of width/2
  (func (export "rgba_to_i420") (param $src i32) (param $y i32) (param $u i32) (param $v i32) (param $width i32) (param $height i32)
    (local $row i32) (local $s0 i32) (local $s1 i32) (local $y0 i32) (local $y1 i32) (local $uu i32) (local $vv i32)
    (local $x i32) (local $simdEnd i32)
    (local $a v128) (local $b v128) (local $rg0 v128) (local $bx0 v128) (local $rg1 v128) (local $bx1 v128)
    (local $rgs v128) (local $bs v128) (local $gm v128)
    (local.set $simdEnd (i32.and (local.get $width) (i32.const -8)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $row) (local.get $height)))
        (local.set $s0 (i32.add (local.get $src) (i32.mul (local.get $row) (i32.shl (local.get $width) (i32.const 2)))))
        (local.set $s1 (i32.add (local.get $s0) (i32.shl (local.get $width) (i32.const 2))))
        (local.set $y0 (i32.add (local.get $y) (i32.mul (local.get $row) (local.get $width))))
        (local.set $y1 (i32.add (local.get $y0) (local.get $width)))
        (local.set $uu (i32.add (local.get $u) (i32.mul (i32.shr_u (local.get $row) (i32.const 1)) (i32.shr_u (local.get $width) (i32.const 1)))))
        (local.set $vv (i32.add (local.get $v) (i32.mul (i32.shr_u (local.get $row) (i32.const 1)) (i32.shr_u (local.get $width) (i32.const 1)))))
        (local.set $x (i32.const 0))
        ;; 8 pixels of two rows at a time: 16 Y, 4 U, 4 V
        (block $simdDone
          (loop $cols
            (br_if $simdDone (i32.ge_u (local.get $x) (local.get $simdEnd)))
            ;; row 0: R0..R7 G0..G7 and B0..B7 as bytes
            (local.set $a (v128.load (local.get $s0)))
            (local.set $b (v128.load offset=16 (local.get $s0)))
            (local.set $rg0 (i8x16.shuffle 0 4 8 12 16 20 24 28 1 5 9 13 17 21 25 29 (local.get $a) (local.get $b)))
            (local.set $bx0 (i8x16.shuffle 2 6 10 14 18 22 26 30 2 6 10 14 18 22 26 30 (local.get $a) (local.get $b)))
            (v128.store64_lane 0 (local.get $y0) (call $luma (local.get $rg0) (local.get $bx0)))
            ;; row 1
            (local.set $a (v128.load (local.get $s1)))
            (local.set $b (v128.load offset=16 (local.get $s1)))
            (local.set $rg1 (i8x16.shuffle 0 4 8 12 16 20 24 28 1 5 9 13 17 21 25 29 (local.get $a) (local.get $b)))
            (local.set $bx1 (i8x16.shuffle 2 6 10 14 18 22 26 30 2 6 10 14 18 22 26 30 (local.get $a) (local.get $b)))
            (v128.store64_lane 0 (local.get $y1) (call $luma (local.get $rg1) (local.get $bx1)))
            ;; 2x2 sums: lanes 0-3 R, 4-7 G (rgs); lanes 0-3 B (bs); then rounded means
            (local.set $rgs (i16x8.shr_u
              (i16x8.add
                (i16x8.add (i16x8.extadd_pairwise_i8x16_u (local.get $rg0)) (i16x8.extadd_pairwise_i8x16_u (local.get $rg1)))
                (v128.const i16x8 2 2 2 2 2 2 2 2))
              (i32.const 2)))
            (local.set $bs (i16x8.shr_u
              (i16x8.add
                (i16x8.add (i16x8.extadd_pairwise_i8x16_u (local.get $bx0)) (i16x8.extadd_pairwise_i8x16_u (local.get $bx1)))
                (v128.const i16x8 2 2 2 2 2 2 2 2))
              (i32.const 2)))
            (local.set $gm (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $rgs) (local.get $rgs)))
            ;; U in lanes 0-3, V in lanes 8-11 after the narrowing
            (local.set $a (i8x16.narrow_i16x8_u
              (i16x8.shr_u
                (i16x8.add
                  (i16x8.add (i16x8.mul (local.get $rgs) (v128.const i16x8 -38 -38 -38 -38 -38 -38 -38 -38))
                             (i16x8.mul (local.get $gm) (v128.const i16x8 -74 -74 -74 -74 -74 -74 -74 -74)))
                  (i16x8.add (i16x8.mul (local.get $bs) (v128.const i16x8 112 112 112 112 112 112 112 112))
                             (v128.const i16x8 32896 32896 32896 32896 32896 32896 32896 32896)))
                (i32.const 8))
              (i16x8.shr_u
                (i16x8.add
                  (i16x8.add (i16x8.mul (local.get $rgs) (v128.const i16x8 112 112 112 112 112 112 112 112))
                             (i16x8.mul (local.get $gm) (v128.const i16x8 -94 -94 -94 -94 -94 -94 -94 -94)))
                  (i16x8.add (i16x8.mul (local.get $bs) (v128.const i16x8 -18 -18 -18 -18 -18 -18 -18 -18))
                             (v128.const i16x8 32896 32896 32896 32896 32896 32896 32896 32896)))
                (i32.const 8))))
            ;; +32768 >> 8 is +128 already; the narrowing saturates nothing (17..240)
            (v128.store32_lane 0 (local.get $uu) (local.get $a))
            (v128.store32_lane 2 (local.get $vv) (local.get $a))
            (local.set $s0 (i32.add (local.get $s0) (i32.const 32)))
            (local.set $s1 (i32.add (local.get $s1) (i32.const 32)))
            (local.set $y0 (i32.add (local.get $y0) (i32.const 8)))
            (local.set $y1 (i32.add (local.get $y1) (i32.const 8)))
            (local.set $uu (i32.add (local.get $uu) (i32.const 4)))
            (local.set $vv (i32.add (local.get $vv) (i32.const 4)))
            (local.set $x (i32.add (local.get $x) (i32.const 8)))
            (br $cols)))
        ;; the last width % 8 pixels, one 2x2 block at a time
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $x) (local.get $width)))
            (call $block (local.get $s0) (local.get $s1) (local.get $y0) (local.get $y1) (local.get $uu) (local.get $vv))
            (local.set $s0 (i32.add (local.get $s0) (i32.const 8)))
            (local.set $s1 (i32.add (local.get $s1) (i32.const 8)))
            (local.set $y0 (i32.add (local.get $y0) (i32.const 2)))
            (local.set $y1 (i32.add (local.get $y1) (i32.const 2)))
            (local.set $uu (i32.add (local.get $uu) (i32.const 1)))
            (local.set $vv (i32.add (local.get $vv) (i32.const 1)))
            (local.set $x (i32.add (local.get $x) (i32.const 2)))
            (br $tail)))
        (local.set $row (i32.add (local.get $row) (i32.const 2)))
        (br $rows))))

  ;; $bytes a multiple of 4: 4 pixels at a time, then one at a time
  (func (export "bgrx_to_rgba") (param $p i32) (param $bytes i32)
    (local $end i32) (local $simdEnd i32)
    (local.set $end (i32.add (local.get $p) (local.get $bytes)))
    (local.set $simdEnd (i32.add (local.get $p) (i32.and (local.get $bytes) (i32.const -16))))
    (block $simdDone
      (loop $quads
        (br_if $simdDone (i32.ge_u (local.get $p) (local.get $simdEnd)))
        (v128.store (local.get $p) (v128.or
          (i8x16.shuffle 2 1 0 3 6 5 4 7 10 9 8 11 14 13 12 15 (v128.load (local.get $p)) (v128.load (local.get $p)))
          (v128.const i32x4 0xff000000 0xff000000 0xff000000 0xff000000)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $quads)))
    (block $done
      (loop $pixels
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        ;; 0xXXRRGGBB -> 0xFFBBGGRR
        (i32.store (local.get $p) (i32.or (i32.or (i32.const 0xff000000)
          (i32.shl (i32.and (i32.load (local.get $p)) (i32.const 0xff)) (i32.const 16)))
          (i32.or (i32.and (i32.load (local.get $p)) (i32.const 0xff00))
            (i32.and (i32.shr_u (i32.load (local.get $p)) (i32.const 16)) (i32.const 0xff)))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $pixels))))

  ;; Y of 8 pixels (R, G in the low and high halves of $rg, B in the low half of $bx), as 8 bytes in lane 0
  (func $luma (param $rg v128) (param $bx v128) (result v128)
    (local $l v128)
    (local.set $l (i16x8.shr_u
      (i16x8.add
        (i16x8.add
          (i16x8.mul (i16x8.extend_low_i8x16_u (local.get $rg)) (v128.const i16x8 66 66 66 66 66 66 66 66))
          (i16x8.mul (i16x8.extend_high_i8x16_u (local.get $rg)) (v128.const i16x8 129 129 129 129 129 129 129 129)))
        (i16x8.add
          (i16x8.mul (i16x8.extend_low_i8x16_u (local.get $bx)) (v128.const i16x8 25 25 25 25 25 25 25 25))
          (v128.const i16x8 4224 4224 4224 4224 4224 4224 4224 4224)))
      (i32.const 8)))
    (i8x16.narrow_i16x8_u (local.get $l) (local.get $l)))

  ;; one 2x2 block, in scalar code (the same integers as the SIMD loop)
  (func $block (param $s0 i32) (param $s1 i32) (param $y0 i32) (param $y1 i32) (param $u i32) (param $v i32)
    (local $r i32) (local $g i32) (local $b i32)
    (i32.store8 (local.get $y0) (call $y1px (local.get $s0)))
    (i32.store8 offset=1 (local.get $y0) (call $y1px (i32.add (local.get $s0) (i32.const 4))))
    (i32.store8 (local.get $y1) (call $y1px (local.get $s1)))
    (i32.store8 offset=1 (local.get $y1) (call $y1px (i32.add (local.get $s1) (i32.const 4))))
    (local.set $r (i32.shr_u (i32.add (i32.add
      (i32.add (i32.load8_u (local.get $s0)) (i32.load8_u offset=4 (local.get $s0)))
      (i32.add (i32.load8_u (local.get $s1)) (i32.load8_u offset=4 (local.get $s1)))) (i32.const 2)) (i32.const 2)))
    (local.set $g (i32.shr_u (i32.add (i32.add
      (i32.add (i32.load8_u offset=1 (local.get $s0)) (i32.load8_u offset=5 (local.get $s0)))
      (i32.add (i32.load8_u offset=1 (local.get $s1)) (i32.load8_u offset=5 (local.get $s1)))) (i32.const 2)) (i32.const 2)))
    (local.set $b (i32.shr_u (i32.add (i32.add
      (i32.add (i32.load8_u offset=2 (local.get $s0)) (i32.load8_u offset=6 (local.get $s0)))
      (i32.add (i32.load8_u offset=2 (local.get $s1)) (i32.load8_u offset=6 (local.get $s1)))) (i32.const 2)) (i32.const 2)))
    (i32.store8 (local.get $u) (i32.shr_u (i32.add (i32.add
      (i32.add (i32.mul (local.get $r) (i32.const -38)) (i32.mul (local.get $g) (i32.const -74)))
      (i32.mul (local.get $b) (i32.const 112))) (i32.const 32896)) (i32.const 8)))
    (i32.store8 (local.get $v) (i32.shr_u (i32.add (i32.add
      (i32.add (i32.mul (local.get $r) (i32.const 112)) (i32.mul (local.get $g) (i32.const -94)))
      (i32.mul (local.get $b) (i32.const -18))) (i32.const 32896)) (i32.const 8))))

  (func $y1px (param $p i32) (result i32)
    (i32.shr_u (i32.add (i32.add
      (i32.add (i32.mul (i32.load8_u (local.get $p)) (i32.const 66)) (i32.mul (i32.load8_u offset=1 (local.get $p)) (i32.const 129)))
      (i32.mul (i32.load8_u offset=2 (local.get $p)) (i32.const 25))) (i32.const 4224)) (i32.const 8)))
)
