//! The global allocator the binaries install: mimalloc, asked only for what Rust needs.
//!
//! The `mimalloc` crate hands every allocation to `mi_malloc_aligned`, whatever its
//! alignment. In mimalloc 3 that call leaves its fast path for any block over 1 KiB and for
//! any size class whose current page has no free block left, and then over-allocates unless
//! the size is a power of two: a 48-byte `Box` came back as a 64-byte block with an interior
//! pointer, which `mi_free` has to look up again. On a proxied call that was 90 allocations
//! with 15 over-allocated, 6.8k instructions and a sixth of the last-level data misses
//! (docs/performance.md, "The hot path, eighth pass").
//!
//! Plain `mi_malloc` already gives what almost every layout asks for: every block is aligned
//! to 8 bytes (sizes are whole words), and a size that is a multiple of 16 lands in a size
//! class that is a multiple of 16, laid out from a 16-byte aligned page start (`init.c`'s bin
//! table, `MI_PAGE_MIN_START_BLOCK_ALIGN`). So a layout aligned to 8 or less, or to 16 with a
//! size that is a multiple of 16 (every Rust type's is), takes `mi_malloc`; anything else, the
//! aligned call as before. This is the rule Rust's own `System` allocator applies to the C
//! library's `malloc`, with mimalloc's guarantee in place of `max_align_t`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as the process's allocator (`#[global_allocator] static A: Mimalloc = Mimalloc;`).
pub struct Mimalloc;

/// Whether a plain (unaligned) mimalloc block of `size` bytes is aligned enough for `align`.
#[inline]
fn plain_fits(align: usize, size: usize) -> bool {
    align <= 8 || (align == 16 && size.is_multiple_of(16))
}

/// A block for `layout` from the plain call when it is aligned enough, else the aligned one.
///
/// # Safety
///
/// `plain` and `aligned` are mimalloc's: they take any size and a power-of-two alignment,
/// which `Layout` guarantees.
#[inline(always)]
unsafe fn pick(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        if plain_fits(layout.align(), layout.size()) {
            plain(layout.size()) as *mut u8
        } else {
            aligned(layout.size(), layout.align()) as *mut u8
        }
    }
}

// SAFETY: every pointer handed out comes from mimalloc, is aligned as its layout asks
// (`plain_fits`, or mimalloc's aligned calls), and is given back to mimalloc's `mi_free`,
// which takes blocks from any of its allocation calls.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `pick`.
        unsafe { pick(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `pick`.
        unsafe { pick(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller gives back a block this allocator handed out.
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the block it moves to is
        // aligned by the same rule as a fresh one of `new_size` bytes.
        unsafe {
            if plain_fits(layout.align(), new_size) {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of alignment and size the rule can meet, allocated (eight blocks
    /// live at once, so consecutive blocks of a size class are checked, not one block over
    /// and over), grown, shrunk and zeroed: each block is aligned as asked and keeps its bytes.
    #[test]
    fn every_block_is_aligned_as_its_layout_asks() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [
                1usize, 7, 8, 16, 24, 40, 48, 56, 80, 1000, 1040, 1500, 5000, 70_000,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let bigger = Layout::from_size_align(size * 3 + 8, align).unwrap();
                let half = Layout::from_size_align(size.div_ceil(2), align).unwrap();
                // SAFETY: non-zero layouts; every block is freed once, with the layout it has.
                unsafe {
                    let blocks: Vec<*mut u8> = (0..8).map(|_| a.alloc(layout)).collect();
                    for &p in &blocks {
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                        p.write_bytes(0xA5, size);
                    }
                    let grown: Vec<*mut u8> = blocks
                        .iter()
                        .map(|&p| a.realloc(p, layout, bigger.size()))
                        .collect();
                    for &p in &grown {
                        assert_eq!(p as usize % align, 0, "grow {size} aligned {align}");
                        assert!((0..size).all(|i| *p.add(i) == 0xA5));
                    }
                    let shrunk: Vec<*mut u8> = grown
                        .iter()
                        .map(|&p| a.realloc(p, bigger, half.size()))
                        .collect();
                    for &p in &shrunk {
                        assert_eq!(p as usize % align, 0, "shrink {size} aligned {align}");
                        a.dealloc(p, half);
                    }
                    let zeroed: Vec<*mut u8> = (0..8).map(|_| a.alloc_zeroed(layout)).collect();
                    for &p in &zeroed {
                        assert_eq!(p as usize % align, 0, "zeroed {size} aligned {align}");
                        assert!((0..size).all(|i| *p.add(i) == 0));
                        a.dealloc(p, layout);
                    }
                }
            }
        }
    }

    #[test]
    fn only_what_mimalloc_aligns_by_itself_skips_the_aligned_call() {
        assert!(plain_fits(1, 1));
        assert!(plain_fits(8, 24));
        assert!(plain_fits(16, 48));
        assert!(!plain_fits(16, 40), "a 40-byte class is only 8-aligned");
        assert!(!plain_fits(32, 64));
        assert!(!plain_fits(128, 128));
    }
}
