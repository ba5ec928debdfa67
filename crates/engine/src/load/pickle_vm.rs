//! The opcode loop of the pickle reader (`pickle.rs`): the opcodes `torch.save` emits and
//! nothing else. Each pops only above the innermost MARK, as Python's unpickler.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::load::pickle::{self as pk, allowed, Value, MAX_DEPTH, MAX_LINE};

pub(crate) struct Vm<'a> {
    data: &'a [u8],
    what: &'a str,
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// What memo copies may still cost (see `Value::cost`).
    budget: u64,
}

type Step = std::result::Result<(), String>;

impl<'a> Vm<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'a str) -> Self {
        let budget = (data.len() as u64).saturating_mul(16).saturating_add(1 << 20);
        Vm { data, what, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), budget }
    }

    fn take(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let rest = &self.data[self.pos..];
        if n > rest.len() as u64 {
            return Err(format!("needs {n} bytes, {} are left", rest.len()));
        }
        self.pos += n as usize;
        Ok(&rest[..n as usize])
    }
    fn uint(&mut self, n: usize) -> std::result::Result<u64, String> {
        let b = self.take(n as u64)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    }
    fn line(&mut self) -> std::result::Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(MAX_LINE + 1).position(|&b| b == b'\n').ok_or("a GLOBAL line is unterminated or too long")?;
        self.pos += n + 1;
        String::from_utf8(rest[..n].to_vec()).map_err(|_| "a GLOBAL line is not UTF-8".to_string())
    }
    fn string(&mut self, n: u64) -> std::result::Result<Value, String> {
        let b = self.take(n)?;
        std::str::from_utf8(b).map(|s| Value::Str(s.to_string())).map_err(|_| "a string is not valid UTF-8".to_string())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn push(&mut self, v: Value) -> Step {
        if pk::depth(&v) > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        self.stack.push(v);
        Ok(())
    }
    fn pop(&mut self) -> std::result::Result<Value, String> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        Ok(self.stack.pop().expect("checked above"))
    }
    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let m = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }
    fn top(&mut self) -> std::result::Result<&mut Value, String> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        Ok(self.stack.last_mut().expect("checked above"))
    }
    /// Pays for a copy of a memoised value.
    fn charge(&mut self, cost: u64) -> Step {
        if cost > self.budget {
            return Err("memoised values are copied more than the pickle's size allows".into());
        }
        self.budget -= cost;
        Ok(())
    }
    fn put(&mut self, idx: u64) -> Step {
        let idx = u32::try_from(idx).map_err(|_| "memo index out of range".to_string())?;
        let budget = self.budget;
        let cost = pk::copy_cost(self.top()?, budget);
        self.charge(cost)?;
        let v = self.stack.last().expect("top() checked").clone();
        self.memo.insert(idx, v);
        Ok(())
    }
    fn get(&mut self, idx: u64) -> Step {
        let v = u32::try_from(idx).ok().and_then(|i| self.memo.get(&i)).ok_or_else(|| format!("memo entry {idx} was never stored"))?;
        let cost = pk::copy_cost(v, self.budget);
        self.charge(cost)?;
        let v = self.memo[&(idx as u32)].clone();
        self.push(v)
    }
    /// Adds items to the list or dict at the top (after the pushes that made them).
    fn extend(&mut self, items: Vec<Value>, dict: bool) -> Step {
        let d = 1 + items.iter().map(pk::depth).max().unwrap_or(0);
        if d > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        match (self.top()?, dict) {
            (Value::List(v, depth), false) => {
                *depth = (*depth).max(d);
                v.extend(items);
            }
            (Value::Dict(v, depth), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err("SETITEMS with an odd number of items".into());
                }
                *depth = (*depth).max(d);
                let mut it = items.into_iter();
                while let (Some(k), Some(x)) = (it.next(), it.next()) {
                    v.push((k, x));
                }
            }
            (other, _) => return Err(format!("{} onto a {}", if dict { "SETITEM" } else { "APPEND" }, pk::kind(other))),
        }
        Ok(())
    }

    /// The value, and the bytes read up to and including STOP.
    pub(crate) fn run(mut self) -> Result<(Value, usize)> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return Err(self.fail(at, "the pickle ends without STOP".into()));
            };
            self.pos += 1;
            match self.step(op) {
                Ok(true) => return self.pop().map(|v| (v, self.pos)).map_err(|e| self.fail(at, e)),
                Ok(false) => {}
                Err(e) => return Err(self.fail(at, e)),
            }
        }
    }

    fn fail(&self, at: usize, why: String) -> Error {
        Error::corrupt(format!("{}: {why} (pickle offset {at})", self.what))
    }

    /// One opcode; true at STOP.
    fn step(&mut self, op: u8) -> std::result::Result<bool, String> {
        match op {
            0x80 => {
                let v = self.uint(1)?;
                if !(2..=5).contains(&v) {
                    return Err(format!("pickle protocol {v}; torch.save writes 2 to 5"));
                }
            }
            0x95 => {
                let n = self.uint(8)?;
                if n > (self.data.len() - self.pos) as u64 {
                    return Err(format!("a frame of {n} bytes runs past the end"));
                }
            }
            b'(' => self.marks.push(self.stack.len()),
            b'.' => return Ok(true),
            b'}' => self.push(Value::Dict(Vec::new(), 1))?,
            b']' => self.push(Value::List(Vec::new(), 1))?,
            b')' => self.push(pk::tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(pk::tuple(items))?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(pk::tuple(items))?
            }
            b's' => {
                let (v, k) = (self.pop()?, self.pop()?);
                self.extend(vec![k, v], true)?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend(items, true)?
            }
            b'a' => {
                let v = self.pop()?;
                self.extend(vec![v], false)?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend(items, false)?
            }
            b'J' => {
                let v = self.uint(4)? as u32 as i32;
                self.push(Value::Int(v as i64))?
            }
            b'K' => {
                let v = self.uint(1)?;
                self.push(Value::Int(v as i64))?
            }
            b'M' => {
                let v = self.uint(2)?;
                self.push(Value::Int(v as i64))?
            }
            0x8a => {
                let n = self.uint(1)? as usize;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes (more than 64 bits)"));
                }
                let raw = self.uint(n)?;
                let v = if n == 0 { 0 } else { ((raw << (64 - 8 * n)) as i64) >> (64 - 8 * n) };
                self.push(Value::Int(v))?
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'G' => {
                let b = self.take(8)?;
                self.push(Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))))?
            }
            b'X' | 0x8c | 0x8d => {
                let n = self.uint(match op {
                    b'X' => 4,
                    0x8c => 1,
                    _ => 8,
                })?;
                let s = self.string(n)?;
                self.push(s)?
            }
            b'B' | b'C' => {
                let n = self.uint(if op == b'B' { 4 } else { 1 })?;
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(b))?
            }
            b'q' => {
                let i = self.uint(1)?;
                self.put(i)?
            }
            b'r' => {
                let i = self.uint(4)?;
                self.put(i)?
            }
            0x94 => {
                let i = self.memo.len() as u64;
                self.put(i)?
            }
            b'h' => {
                let i = self.uint(1)?;
                self.get(i)?
            }
            b'j' => {
                let i = self.uint(4)?;
                self.get(i)?
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = pk::persistent_load(pid)?;
                self.push(v)?
            }
            b'R' => {
                let args = self.pop()?;
                let f = self.pop()?;
                let (Value::Global(g), Value::Tuple(args, _)) = (&f, args) else {
                    return Err(format!("REDUCE calls a {}, which is not an allowed global", pk::kind(&f)));
                };
                let v = pk::call(*g, args)?;
                self.push(v)?
            }
            b'b' => {
                let _state = self.pop()?;
                match self.top()? {
                    Value::Dict(..) | Value::Tensor(_) => {}
                    other => return Err(format!("BUILD on a {}", pk::kind(other))),
                }
            }
            b'c' | 0x93 => {
                let (module, name) = if op == b'c' {
                    (self.line()?, self.line()?)
                } else {
                    match (self.pop()?, self.pop()?) {
                        (Value::Str(n), Value::Str(m)) => (m, n),
                        _ => return Err("STACK_GLOBAL of values that are not strings".into()),
                    }
                };
                let g = allowed(&module, &name).ok_or_else(|| {
                    format!("the pickle names `{module}.{name}`, which is not a tensor rebuild or plain container; refused (loading it would run code)")
                })?;
                self.push(Value::Global(g))?
            }
            _ => return Err(format!("opcode 0x{op:02x} is not one torch.save writes for tensors and plain containers; refused")),
        }
        Ok(false)
    }
}
