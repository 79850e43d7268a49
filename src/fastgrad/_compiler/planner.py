"""The planner: a traced program made fast without changing what it computes.

Passes, in order: affine + sigmoid fused into one instruction; a weight gradient folded
into its SGD update where that is exactly as accurate (one full contribution, no
reduction: see ``_fuse_sgd``); constants folded; copies propagated; dead code removed;
runs of elementwise instructions over one iteration space fused into tiled loops with
register temporaries; temporaries laid out to share buffers once dead.
"""

import collections

import numpy as np

from .._factored import leaf_grad
from .._opcodes import ADAM, AFFINE, COPY, EW_END, FUSED, GEMM, SGD, SIGMOID
from .._tape import TensorBase
from .executor import ew_eval
from .ir import BLK, FULL, NREG, SCALAR, Ins

__all__ = ["Plan", "leaves_of", "structure", "rebuild"]




def leaves_of(x, out):
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        for v in x:
            leaves_of(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            leaves_of(v, out)
    else:
        out.append(x)
    return out


def structure(x):
    """``x``'s nesting of tuples, lists and dicts with every leaf replaced by None."""
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return type(x)(structure(v) for v in x)
    if isinstance(x, dict):
        return {k: structure(v) for k, v in x.items()}
    return None


def rebuild(template, values):
    it = iter(values)

    def go(x):
        if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
            return type(x)(go(v) for v in x)
        if isinstance(x, dict):
            return {k: go(v) for k, v in x.items()}
        return next(it)

    return go(template)


class Plan:
    """The program of one trace, planned: instructions, buffers and per-call bindings."""

    def __init__(self, tracer, inputs, result, keep_grads):
        self.tracer = tracer
        self.inputs = inputs  # [(position, slot)]
        self.instrs = tracer.instrs
        outs = []
        for v in leaves_of(result, []):
            if isinstance(v, TensorBase):
                s = tracer.by_tensor.get(id(v)) or tracer.by_array.get(id(v._data))
                outs.append(("tensor", s, None) if s is not None else ("const", None, v.detach()))
            elif isinstance(v, np.ndarray):
                s = tracer.by_array.get(id(v))
                outs.append(("array", s, None) if s is not None else ("const", None, v.copy()))
            else:
                outs.append(("const", None, v))
        self.outputs = outs
        # Only the result's structure is kept: holding the traced tensors would keep their
        # graph alive, and with it the parameters' write protection (Tensor._saves).
        self.template = structure(result)
        # What .grad holds when the function returns, for each leaf it touched.
        effects = []
        touched = {}
        for i, t in tracer.leaves_seen.items():
            touched[i] = t
        for t in tracer.keep:
            if isinstance(t, TensorBase) and id(t) in tracer.cleared:
                touched[id(t)] = t
        for i, t in touched.items():
            if t._node is None or t._node.prim is not None:
                continue
            slot_of_t = tracer.by_tensor.get(i)
            if slot_of_t is not None and slot_of_t.kind == "alias":
                continue  # grad's start node, detach(): not the user's tensor
            g = leaf_grad(t._node)
            if g is None or not keep_grads:
                if g is not None or i in tracer.cleared:
                    effects.append((t, None))
            else:
                s = tracer.by_array.get(id(g))
                if s is not None:
                    effects.append((t, s))
        self.effects = effects
        self.assume_none = list(tracer.assume_none.values())
        observable = {s for _, s, _ in outs if s is not None} | {s for _, s in effects if s is not None}
        self.observable = {s.storage() for s in observable}
        self._fuse_affine_sigmoid()
        self._fuse_sgd()
        if keep_grads:
            self._update_after_gemm()
        self._fold_constants()
        self._propagate_copies()
        self._dead_code()
        self.registers = {}
        self._fuse_chains()
        self._allocate()

    # -- passes --

    def _readers(self):
        readers = collections.defaultdict(list)
        for k, ins in enumerate(self.instrs):
            for s in ins.reads():
                readers[s.storage()].append(k)
        return readers

    def _fuse_affine_sigmoid(self):
        readers = self._readers()
        instrs = self.instrs
        drop = set()
        for _k, ins in enumerate(instrs):
            if ins.op != AFFINE or ins.flags & 2:
                continue
            z = ins.out
            r = readers.get(z.storage(), [])
            if z.kind != "temp" or z in self.observable or len(r) != 1:
                continue
            j = r[0]
            s = instrs[j]
            if (s.op == SIGMOID and s.args[0] is z and s.omode == FULL and not s.acc
                    and s.f[0] == 1.0 and s.out.kind == "temp" and s.out.dtype == z.dtype):
                ins.out = s.out
                ins.flags |= 2
                drop.add(j)
        self.instrs = [ins for k, ins in enumerate(instrs) if k not in drop]

    def _fuse_sgd(self):
        """W −= η W̄ folded into the instruction that computes W̄ (its only reader).

        Only where that is as accurate as computing W̄ first: one contribution, which
        forms each element of W̄ completely before adding it into W (a GEMM sums its
        products in registers; an elementwise instruction without reduction). A
        reduction (a bias gradient's sum over the batch) or several contributions would
        add partial sums into W one at a time, each rounded at W's magnitude instead of
        W̄'s: the update would lose digits the eager step keeps."""
        changed = True
        while changed:
            changed = False
            instrs = self.instrs
            readers = self._readers()
            writers = collections.defaultdict(list)
            for k, ins in enumerate(instrs):
                writers[ins.out.storage()].append(k)
            for k, ins in enumerate(instrs):
                if ins.op != SGD or ins.f[2] != 0.0 or ins.f[3] != 0.0 or ins.args[1] is not None:
                    continue
                W, dW = ins.out.storage(), ins.args[0]
                gs = dW.storage()
                if gs.kind != "temp" or gs in self.observable or W.dtype != gs.dtype \
                        or dW is not gs or ins.out is not W:
                    continue
                contribs = writers[gs]
                if len(contribs) != 1:
                    continue
                only = instrs[contribs[0]]
                if only.out is not dW or not (only.op == GEMM or (only.op < EW_END and only.omode == FULL)):
                    continue
                if [r for r in readers.get(gs, []) if r not in contribs] != [k]:
                    continue
                first = contribs[0]
                # W must not be read between the first contribution and the update.
                if any(W in [s.storage() for s in instrs[j].reads()] for j in range(first, k)
                       if j not in contribs) or any(
                        W in [a.storage() for a in instrs[c].args if a is not None] for c in contribs):
                    continue
                lr_obj, lr_attr, lr_mult = ins.dyn[1]
                for c in contribs:
                    ci = instrs[c]
                    ci.out = W
                    ci.acc = True
                    scale = ci.f[0]
                    ci.f[0] = -ins.f[1] * scale
                    ci.dyn = dict(ci.dyn)
                    ci.dyn[0] = (lr_obj, lr_attr, -lr_mult * scale)
                self.instrs = [x for j, x in enumerate(instrs) if j != k]
                changed = True
                break

    def _update_after_gemm(self):
        """With .grad kept, W −= η W̄ applied by the GEMM that writes W̄, a panel of W̄'s
        rows at a time while the panel is in cache (flags bit 2; args[2] = W, f[1] = η):
        W̄ is written once and read back hot, not read again from memory by a separate
        SGD. The numbers are the SGD's: each element of W̄ is complete before it is used."""
        instrs = self.instrs
        writers = collections.defaultdict(list)
        for k, ins in enumerate(instrs):
            writers[ins.out.storage()].append(k)
        drop = set()
        for k, ins in enumerate(instrs):
            if ins.op != SGD or ins.f[2] != 0.0 or ins.f[3] != 0.0 or ins.args[1] is not None:
                continue
            W, dW = ins.out.storage(), ins.args[0]
            gs = dW.storage()
            if ins.out is not W or dW is not gs or W.dtype != gs.dtype or len(writers[gs]) != 1:
                continue
            j = writers[gs][0]
            gemm = instrs[j]
            if (gemm.op != GEMM or gemm.out is not dW or gemm.acc or gemm.flags & 4 or j > k
                    or gemm.dyn or W in [a.storage() for a in gemm.args if a is not None]):
                continue
            # W is neither read nor written between the GEMM and the update it replaces
            if any(W in [s.storage() for s in instrs[i].reads() + instrs[i].writes()]
                   for i in range(j + 1, k)):
                continue
            gemm.args = tuple(gemm.args[:2]) + (W,)
            gemm.flags |= 4
            gemm.f[1] = ins.f[1]
            if 1 in ins.dyn:
                gemm.dyn = {1: ins.dyn[1]}
            drop.add(k)
        self.instrs = [x for i, x in enumerate(instrs) if i not in drop]

    def _writers(self):
        writers = collections.defaultdict(list)
        for k, ins in enumerate(self.instrs):
            for s in ins.writes():
                writers[s.storage()].append(k)
        return writers

    def _fold_constants(self):
        """An elementwise instruction of constants only is computed now (the seed ×
        the mean's 1/N, …): its output becomes a constant. One pass in program order, so
        folded outputs fold further."""
        consts = self.tracer.const_slots
        writers = self._writers()
        keep = []
        for k, ins in enumerate(self.instrs):
            out = ins.out
            if (ins.op >= EW_END or ins.dyn or ins.acc or out.kind != "temp"
                    or out in self.observable or writers[out] != [k]
                    or not all(a is None or a.storage() in consts for a in ins.args)):
                keep.append(ins)
                continue
            val = np.zeros(out.shape, out.dtype)
            with np.errstate(all="ignore"):
                ew_eval(ins, [None if a is None else a.storage().ref.reshape(a.shape)
                               for a in ins.args], val, ins.f)
            out.kind, out.ref = "array", val
            consts.add(out)
        self.instrs = keep

    def _propagate_copies(self):
        """out = COPY(src), out written nowhere else and src not written afterwards: the
        readers of out read src (the seed copies and the add's ḡ pass-through)."""
        writers = self._writers()
        repl = {}

        def resolve(s):
            while s in repl:
                s = repl[s]
            return s

        keep = []
        for k, ins in enumerate(self.instrs):
            if any(a is not None and a in repl for a in ins.args):
                ins.args = tuple(None if a is None else resolve(a) for a in ins.args)
            out = ins.out
            if (ins.op == COPY and not ins.acc and not ins.dyn and ins.f[0] == 1.0
                    and ins.omode == FULL and ins.modes[0] == FULL and out.kind == "temp"
                    and out not in self.observable):
                src = ins.args[0]
                ss = src.storage()
                if (writers[out] == [k] and src.dtype == out.dtype and src.size == out.size
                        and all(w < k for w in writers.get(ss, ())) and ss.kind != "lazyT"):
                    repl[out] = src
                    continue
            keep.append(ins)
        if repl:
            for s in self.tracer.slots:
                if s.kind == "alias" and s.base in repl:
                    s.base = resolve(s.base)
        self.instrs = keep

    def _fuse_chains(self):
        """Runs of elementwise instructions over one iteration space become one FUSED
        instruction, evaluated tile by tile; temporaries that live only inside the run
        are held in register tiles instead of memory."""
        def eligible(ins):
            return (ins.op < EW_END and not ins.dyn and ins.omode in (FULL, SCALAR)
                    and all(m in (FULL, SCALAR) for a, m in zip(ins.args, ins.modes) if a is not None))

        groups, cur = [], []
        for k, ins in enumerate(self.instrs):
            if eligible(ins) and (not cur or (ins.R * ins.C == cur[0][1].R * cur[0][1].C
                                              and ins.out.dtype == cur[0][1].out.dtype)):
                cur.append((k, ins))
                continue
            if len(cur) >= 2:
                groups.append(cur)
            cur = [(k, ins)] if eligible(ins) else []
        if len(cur) >= 2:
            groups.append(cur)
        if not groups:
            return
        access = collections.defaultdict(list)  # storage -> [(k, how)] over the whole program
        for k, ins in enumerate(self.instrs):
            subs = ins.subs or [ins]
            for sub in subs:
                if sub.op < EW_END:
                    for a, m in zip(sub.args, sub.modes):
                        if a is not None:
                            access[a.storage()].append((k, "r", m, a))
                    access[sub.out.storage()].append((k, "w" if not sub.acc else "a", sub.omode, sub.out))
                else:
                    for s in sub.reads():
                        access[s.storage()].append((k, "r", None, s))
                    for s in sub.writes():
                        access[s.storage()].append((k, "w", None, s))
        replace = {}
        for group in groups:
            n = group[0][1].R * group[0][1].C
            # split where tiling would reorder a reduction and a read of its result
            if n > BLK:
                parts, cur, reduced = [], [], set()
                for k, ins in group:
                    rd = {a.storage() for a in ins.args if a is not None}
                    scalar_rd = {a.storage() for a, m in zip(ins.args, ins.modes)
                                 if a is not None and m == SCALAR}
                    if rd & reduced or scalar_rd & {i.out.storage() for _, i in cur}:
                        parts.append(cur)
                        cur, reduced = [], set()
                    cur.append((k, ins))
                    if ins.omode != FULL:
                        reduced.add(ins.out.storage())
                parts.append(cur)
            else:
                parts = [group]
            for part in parts:
                if len(part) < 2:
                    continue
                ks = {k for k, _ in part}
                regs = self._registers(part, ks, access, n)
                fused = Ins(FUSED, part[-1][1].out, R=1, C=n)
                fused.subs = [ins for _, ins in part]
                replace[part[0][0]] = fused
                for k in ks:
                    replace.setdefault(k, None)
                self.registers.update(regs)
        self.instrs = [replace.get(k, ins) for k, ins in enumerate(self.instrs)
                       if replace.get(k, ins) is not None]

    def _registers(self, part, ks, access, n):
        """Register numbers for the temporaries accessed only inside ``part``, in full
        mode, written before they are read; at most NREG live at once."""
        cands, seen = [], set()
        for _k, ins in part:
            st = ins.out.storage()
            if (st.kind != "temp" or st in self.observable or st.size != n or st in seen
                    or st.dtype != ins.out.dtype):
                continue
            acc = access[st]
            if any(k2 not in ks for k2, *_ in acc):
                continue
            if any(m != FULL for _, _, m, _ in acc):
                continue
            first = acc[0]
            if first[1] != "w":
                continue
            cands.append(st)
            seen.add(st)
        if not cands:
            return {}
        order = [k for k, _ in part]
        pos = {k: i for i, k in enumerate(order)}
        live = {}
        for st in cands:
            idx = [pos[k2] for k2, *_ in access[st]]
            live[st] = (min(idx), max(idx))
        regs, free, active = {}, list(range(NREG - 1, -1, -1)), []
        for st in sorted(cands, key=lambda s: live[s][0]):
            start, end = live[st]
            for other in list(active):
                if live[other][1] < start:
                    active.remove(other)
                    free.append(regs[other])
            if not free:
                continue
            regs[st] = free.pop()
            active.append(st)
        # every slot object over a promoted storage maps to its register
        out = {}
        for st, r in regs.items():
            for _, _, _, s in access[st]:
                out[s] = r
            out[st] = r
        return out

    def _dead_code(self):
        while True:
            readers = self._readers()
            keep = []
            removed = False
            for ins in self.instrs:
                st = ins.out.storage()
                if (st.kind == "temp" and st not in self.observable and not readers.get(st)
                        and ins.op not in (SGD, ADAM)):
                    removed = True
                    continue
                keep.append(ins)
            self.instrs = keep
            if not removed:
                return

    def _allocate(self):
        """Temporaries share storage once dead (same dtype and size; never within one instruction)."""
        tracer = self.tracer
        last = {}
        first = {}
        for k, ins in enumerate(self.instrs):
            for s in ins.reads() + ins.writes():
                st = s.storage()
                if st.kind == "temp":
                    last[st] = k
                    first.setdefault(st, k)
        for st in self.observable:
            if st.kind == "temp":
                last[st] = len(self.instrs)
        pool = collections.defaultdict(list)
        blocks = {}
        self.blocks = []
        ends = collections.defaultdict(list)
        for st, k in last.items():
            ends[k].append(st)
        starts = collections.defaultdict(list)
        for st, k in first.items():
            starts[k].append(st)
        for k in range(len(self.instrs) + 1):
            for st in starts.get(k, ()):
                key = (st.dtype, st.size)
                if pool[key]:
                    blocks[st] = pool[key].pop()
                else:
                    blocks[st] = len(self.blocks)
                    self.blocks.append(np.zeros(max(st.size, 1), st.dtype))
            for st in ends.get(k, ()):
                if st in blocks:
                    pool[(st.dtype, st.size)].append(blocks[st])
        # Temps that are never written by an instruction (seeded constants are "array") get
        # their own zeroed block.
        for s in tracer.slots:
            if s.kind == "temp" and s not in blocks:
                blocks[s] = len(self.blocks)
                self.blocks.append(np.zeros(max(s.size, 1), s.dtype))
        self.block_of = blocks
        # Slot numbering: only slots the program uses (instruction operands and outputs).
        used = []
        seen = set()

        def use(s):
            if s is None or id(s) in seen:
                return
            if s.kind == "alias":
                use(s.base)
            seen.add(id(s))
            used.append(s)

        for ins in self.instrs:
            for sub in ins.subs or (ins,):
                use(sub.out)
                for a in sub.args:
                    use(a)
        for _, s, _ in self.outputs:
            use(s)
        for _, s in self.effects:
            use(s)
        for _, s in self.inputs:
            use(s)
        self.used = used
        self.number = {id(s): i for i, s in enumerate(used)}

    def initial_array(self, s):
        """The array a slot starts bound to (its block, its fixed array, or None)."""
        if s.kind == "temp":
            return self.blocks[self.block_of[s]][: s.size].reshape(s.shape)
        if s.kind == "array":
            return s.ref
        if s.kind == "state":
            return s.ref._data
        return None


