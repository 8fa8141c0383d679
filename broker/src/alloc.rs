//! A global allocator that keeps hostile length prefixes from aborting the process.
//!
//! The protocol codec sizes a decoded array from its length field before reading the
//! elements, so four bytes claiming two billion elements ask for hundreds of gigabytes at
//! once. The system allocator refuses such a request and Rust then aborts the whole process.
//! This allocator serves requests of 1 GiB and more with `MAP_NORESERVE` mappings, which the
//! kernel commits only as pages are touched: the decode fails on the missing elements, the
//! untouched mapping is released, and the broker answers with a closed connection instead of
//! dying. Programs that embed the broker should install it:
//! `#[global_allocator] static ALLOC: brook_broker::GuardedAlloc = brook_broker::GuardedAlloc;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

/// The system allocator, with lazily committed mappings for huge requests.
pub struct GuardedAlloc;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

// SAFETY: small requests go to the system allocator unchanged; huge ones get a fresh anonymous
// mapping of at least `size` bytes, page-aligned (≥ any alignment accepted by `is_huge`), zeroed
// by the kernel, and are unmapped with the same size they were mapped with.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_huge(&layout) {
            return System.alloc(layout);
        }
        let p = libc::mmap(
            ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p as *mut u8
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            self.alloc(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            libc::munmap(ptr as *mut libc::c_void, layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocation_is_lazy_and_usable() {
        let a = GuardedAlloc;
        // 64 GiB: more than this machine has; must succeed because nothing is touched.
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            *p.add((64 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }
}
