// bpe.cpp — byte-level BPE: GPT-2's byte <-> unicode table and the merge loop (tokenizer.h).
//
// The merge loop is the Rust crate's: every adjacent pair with a merge goes into a min-heap by
// (rank, position); the top is merged when it is still current (both symbols alive and still that
// pair), and the new symbol's pairs with its neighbours are pushed. O(n log n) in the piece length,
// so a run of 10^5 spaces or letters costs no more than it must.
#include <algorithm>
#include <queue>

#include "longctx/common.h"
#include "longctx/tokenizer.h"
#include "tokenizer_impl.h"

namespace longctx {

const std::array<uint32_t, 256>& byte_to_unicode() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = printable ? b : 256 + extra++;
    }
    return t;
  }();
  return table;
}

int unicode_to_byte(uint32_t cp) {
  static const std::vector<int> inverse = [] {
    std::vector<int> v(512, -1);
    const auto& t = byte_to_unicode();
    for (int b = 0; b < 256; ++b) v[t[size_t(b)]] = b;
    return v;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

// Decodes one code point of valid UTF-8 (the JSON reader validated the file's strings).
static uint32_t next_cp(const std::string& s, size_t& i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
  for (int k = 1; k < n && i + size_t(k) < s.size(); ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3F);
  i += size_t(n);
  return cp;
}

bool byte_level_to_bytes(const std::string& spelled, std::string& out) {
  out.clear();
  for (size_t i = 0; i < spelled.size();) {
    const int b = unicode_to_byte(next_cp(spelled, i));
    if (b < 0) return false;
    out.push_back(char(b));
  }
  return true;
}

size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

struct BpeScratch {
  struct Sym {
    int32_t id, prev, next, len;
  };
  struct Merge {
    int32_t rank, pos, id;
    bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
  };
  std::vector<Sym> sym;
  std::vector<Merge> heap;
};

BpeScratch* new_bpe_scratch() { return new BpeScratch; }
void delete_bpe_scratch(BpeScratch* s) { delete s; }

void bpe_piece(const TokenizerData& d, std::string_view piece, std::vector<int32_t>& out, BpeScratch& s) {
  const int32_t n = int32_t(piece.size());
  if (n == 0) return;
  if (n == 1) return out.push_back(d.byte_id[uint8_t(piece[0])]);
  auto& sym = s.sym;
  auto& heap = s.heap;
  sym.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) sym[size_t(i)] = {d.byte_id[uint8_t(piece[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1, 1};
  auto push = [&](int32_t pos) {
    const int32_t nx = sym[size_t(pos)].next;
    if (nx < 0) return;
    const auto it = d.merges.find(uint64_t(uint32_t(sym[size_t(pos)].id)) << 32 | uint32_t(sym[size_t(nx)].id));
    if (it == d.merges.end()) return;
    heap.push_back({it->second.first, pos, it->second.second});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const BpeScratch::Merge m = heap.back();
    heap.pop_back();
    auto& a = sym[size_t(m.pos)];
    if (a.len == 0 || a.next < 0) continue;
    auto& b = sym[size_t(a.next)];
    const auto it = d.merges.find(uint64_t(uint32_t(a.id)) << 32 | uint32_t(b.id));
    if (it == d.merges.end() || it->second.second != m.id) continue;  // stale: the pair changed
    a.id = m.id, a.len += b.len, b.len = 0;
    a.next = b.next;
    if (a.next >= 0) sym[size_t(a.next)].prev = m.pos;
    if (a.prev >= 0) push(a.prev);
    push(m.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

}  // namespace longctx
