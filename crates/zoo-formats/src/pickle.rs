//! An inert pickle reader: it turns opcodes into data and never imports or calls anything.
//!
//! Python's unpickler executes a small stack machine whose `GLOBAL`/`REDUCE` opcodes import
//! and call arbitrary functions; that is how a pickle runs code. This reader runs the same
//! machine but every import becomes a [`Node::Global`] (a pair of strings) and every call a
//! [`Node::Call`] (the callable and its arguments, as data). Whether a call means anything is
//! decided later by whoever interprets the tree (see `torch.rs`), against an allow-list.
//!
//! Values live in an arena ([`Pickle::nodes`]) and refer to each other by [`NodeId`], so
//! memo sharing costs nothing, cycles cannot leak, and the arena never holds more nodes than
//! the pickle has opcodes. `None`, `True` and `False` are one shared node each (they cannot
//! change), so a pickle of nothing but pushes and pops of them allocates nothing. Every
//! length, the stack, the mark stack, the memo and the arena are bounded by [`Limits`] and
//! by the input's own length; a length field is checked against the bytes that remain before
//! anything is allocated. Memory is linear in the input with a small constant: at most one
//! node (about 100 bytes) per opcode, and at most [`Limits::max_nodes`] of them.

use std::collections::HashMap;

/// Index of a node in [`Pickle::nodes`].
pub type NodeId = usize;

/// A value the pickle built.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64: little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<NodeId>),
    List(Vec<NodeId>),
    Dict(Vec<(NodeId, NodeId)>),
    Set(Vec<NodeId>),
    /// `module.name` as the pickle would import it. Never imported here.
    Global {
        module: String,
        name: String,
    },
    /// The result of calling `callable` with `args` (REDUCE, NEWOBJ, INST, OBJ). Never called:
    /// the call, and whatever the pickle later did to its result, are recorded as data.
    Call {
        callable: NodeId,
        args: NodeId,
        kwargs: Option<NodeId>,
        /// Items added with SETITEM(S) to the result of the call.
        dict_items: Vec<(NodeId, NodeId)>,
        /// Items added with APPEND(S) / ADDITEMS.
        list_items: Vec<NodeId>,
        /// State given with BUILD.
        state: Option<NodeId>,
    },
    /// A persistent id (PyTorch uses it for storages); resolved by the interpreter.
    PersistentId(NodeId),
}

/// Hard bounds on what a pickle may make the reader do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_stack: usize,
    pub max_marks: usize,
    pub max_memo: usize,
    pub max_nodes: usize,
    /// Largest single string or bytes object.
    pub max_str_len: usize,
}

impl Default for Limits {
    /// Generous for real checkpoints (a state dict of 10 000 tensors is about 150 000 values)
    /// while bounding a hostile pickle to about 200 MB of arena and 50 MB of memo.
    fn default() -> Self {
        Limits {
            max_stack: 1 << 20,
            max_marks: 1 << 12,
            max_memo: 1 << 20,
            max_nodes: 1 << 21,
            max_str_len: 1 << 30,
        }
    }
}

/// Why a pickle could not be read. `offset` is the byte offset of the opcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("opcode {opcode} at byte {offset}: unexpected end of pickle")]
    Truncated { opcode: &'static str, offset: usize },
    #[error("unknown opcode 0x{opcode:02x} at byte {offset}")]
    UnknownOpcode { opcode: u8, offset: usize },
    #[error("opcode {opcode} at byte {offset} is not supported: {reason}")]
    Unsupported {
        opcode: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("opcode {opcode} at byte {offset}: {reason}")]
    Malformed {
        opcode: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("opcode {opcode} at byte {offset}: stack underflow")]
    StackUnderflow { opcode: &'static str, offset: usize },
    #[error("opcode {opcode} at byte {offset}: no MARK on the stack")]
    NoMark { opcode: &'static str, offset: usize },
    #[error("opcode {opcode} at byte {offset}: memo key {key} was never stored")]
    MissingMemo {
        opcode: &'static str,
        offset: usize,
        key: u64,
    },
    #[error("opcode {opcode} at byte {offset}: limit exceeded: {what} (limit {limit})")]
    Limit {
        opcode: &'static str,
        offset: usize,
        what: &'static str,
        limit: usize,
    },
    #[error("pickle protocol {protocol} at byte {offset} is not supported (0 to 5 are)")]
    Protocol { protocol: u8, offset: usize },
}

/// A module-level name the pickle would import.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Import {
    pub module: String,
    pub name: String,
}

impl std::fmt::Display for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// A read pickle: the arena, the root and every import it names in order of appearance.
#[derive(Debug, Clone, Default)]
pub struct Pickle {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    pub imports: Vec<Import>,
    /// Bytes consumed, up to and including STOP.
    pub len: usize,
}

impl Pickle {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The string a node holds, if it is one.
    pub fn str(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer a node holds, if it is one.
    pub fn int(&self, id: NodeId) -> Option<i64> {
        match &self.nodes[id] {
            Node::Int(i) => Some(*i),
            Node::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// Items of a tuple or list node.
    pub fn seq(&self, id: NodeId) -> Option<&[NodeId]> {
        match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => Some(v),
            _ => None,
        }
    }

    /// `(module, name)` of a global node.
    pub fn global(&self, id: NodeId) -> Option<(&str, &str)> {
        match &self.nodes[id] {
            Node::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
}

/// Reads one pickle from the start of `data` with the default limits.
pub fn read(data: &[u8]) -> Result<Pickle, (PickleError, Vec<Import>)> {
    read_with(data, Limits::default())
}

/// Reads one pickle from the start of `data`, stopping at STOP. On error, also returns the
/// imports seen before it, so a scanner can report what a broken pickle would have imported.
pub fn read_with(data: &[u8], limits: Limits) -> Result<Pickle, (PickleError, Vec<Import>)> {
    // A value needs an opcode: never more nodes than bytes (plus the shared constants).
    let limits = Limits {
        max_nodes: limits.max_nodes.min(data.len().saturating_add(SHARED)),
        ..limits
    };
    let mut m = Machine {
        data,
        pos: 0,
        limits,
        nodes: vec![Node::None, Node::Bool(true), Node::Bool(false)],
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        imports: Vec::new(),
    };
    match m.run() {
        Ok(root) => Ok(Pickle {
            nodes: m.nodes,
            root,
            imports: m.imports,
            len: m.pos,
        }),
        Err(e) => Err((e, m.imports)),
    }
}

/// The shared nodes: `None`, `True`, `False`, in this order at the start of every arena.
const SHARED: usize = 3;
const NONE: NodeId = 0;
const TRUE: NodeId = 1;
const FALSE: NodeId = 2;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    limits: Limits,
    nodes: Vec<Node>,
    stack: Vec<NodeId>,
    marks: Vec<usize>,
    memo: HashMap<u64, NodeId>,
    imports: Vec<Import>,
}

/// Name of an opcode, for errors.
fn opname(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "?",
    }
}

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<NodeId, PickleError> {
        loop {
            let at = self.pos;
            let op = *self.data.get(at).ok_or(PickleError::Truncated {
                opcode: "(none: no STOP)",
                offset: at,
            })?;
            self.pos += 1;
            let name = opname(op);
            match op {
                b'.' => {
                    return self.pop(name, at);
                }
                0x80 => {
                    let p = self.take(1, name, at)?[0];
                    if p > 5 {
                        return Err(PickleError::Protocol {
                            protocol: p,
                            offset: at,
                        });
                    }
                }
                0x95 => {
                    self.take(8, name, at)?;
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return Err(self.limit(name, at, "MARK depth", self.limits.max_marks));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP removes the top of the stack, or a MARK if one sits on top.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop(name, at)?;
                    }
                }
                b'1' => {
                    self.pop_mark(name, at)?;
                }
                b'2' => {
                    let top = *self.stack.last().ok_or(PickleError::StackUnderflow {
                        opcode: name,
                        offset: at,
                    })?;
                    self.push(top, name, at)?;
                }
                b'N' => self.push(NONE, name, at)?,
                0x88 => self.push(TRUE, name, at)?,
                0x89 => self.push(FALSE, name, at)?,
                b'J' => {
                    let b = self.take(4, name, at)?;
                    let v = i32::from_le_bytes(b.try_into().unwrap());
                    self.new_push(Node::Int(i64::from(v)), name, at)?;
                }
                b'K' => {
                    let v = self.take(1, name, at)?[0];
                    self.new_push(Node::Int(i64::from(v)), name, at)?;
                }
                b'M' => {
                    let b = self.take(2, name, at)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.new_push(Node::Int(i64::from(v)), name, at)?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.take(1, name, at)?[0])
                    } else {
                        let b = self.take(4, name, at)?;
                        let n = i32::from_le_bytes(b.try_into().unwrap());
                        usize::try_from(n)
                            .map_err(|_| self.malformed(name, at, "negative length"))?
                    };
                    let b = self.take_len(n, name, at)?.to_vec();
                    let node = long_from_le(&b);
                    self.new_push(node, name, at)?;
                }
                b'I' => {
                    let line = self.line(name, at)?;
                    match line.as_str() {
                        "00" => self.push(FALSE, name, at)?,
                        "01" => self.push(TRUE, name, at)?,
                        s => {
                            let v = s
                                .trim()
                                .parse()
                                .map_err(|_| self.malformed(name, at, "bad integer literal"))?;
                            self.new_push(Node::Int(v), name, at)?;
                        }
                    }
                }
                b'L' => {
                    let line = self.line(name, at)?;
                    let s = line.trim().trim_end_matches('L');
                    let node = match s.parse::<i64>() {
                        Ok(v) => Node::Int(v),
                        Err(_)
                            if !s.is_empty()
                                && s.trim_start_matches('-')
                                    .bytes()
                                    .all(|c| c.is_ascii_digit()) =>
                        {
                            Node::BigInt(s.as_bytes().to_vec())
                        }
                        Err(_) => return Err(self.malformed(name, at, "bad long literal")),
                    };
                    self.new_push(node, name, at)?;
                }
                b'F' => {
                    let line = self.line(name, at)?;
                    let v: f64 = line
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed(name, at, "bad float literal"))?;
                    self.new_push(Node::Float(v), name, at)?;
                }
                b'G' => {
                    let b = self.take(8, name, at)?;
                    self.new_push(
                        Node::Float(f64::from_be_bytes(b.try_into().unwrap())),
                        name,
                        at,
                    )?;
                }
                b'S' => {
                    let line = self.line(name, at)?;
                    let s = unquote(&line)
                        .ok_or_else(|| self.malformed(name, at, "STRING literal is not quoted"))?;
                    self.new_push(Node::Str(s), name, at)?;
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'U' | b'C' => usize::from(self.take(1, name, at)?[0]),
                        b'T' | b'B' => {
                            u32::from_le_bytes(self.take(4, name, at)?.try_into().unwrap()) as usize
                        }
                        _ => self.len8(name, at)?,
                    };
                    let b = self.take_len(n, name, at)?.to_vec();
                    let node = if matches!(op, b'T' | b'U') {
                        // Python 2 str: PyTorch reads these as latin-1 text.
                        Node::Str(b.iter().map(|&c| char::from(c)).collect())
                    } else {
                        Node::Bytes(b)
                    };
                    self.new_push(node, name, at)?;
                }
                b'V' => {
                    let line = self.line(name, at)?;
                    self.new_push(Node::Str(unescape_raw_unicode(&line)), name, at)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        0x8c => usize::from(self.take(1, name, at)?[0]),
                        b'X' => {
                            u32::from_le_bytes(self.take(4, name, at)?.try_into().unwrap()) as usize
                        }
                        _ => self.len8(name, at)?,
                    };
                    let b = self.take_len(n, name, at)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| self.malformed(name, at, "string is not UTF-8"))?
                        .to_string();
                    self.new_push(Node::Str(s), name, at)?;
                }
                b')' => self.new_push(Node::Tuple(Vec::new()), name, at)?,
                b't' => {
                    let items = self.pop_mark(name, at)?;
                    self.new_push(Node::Tuple(items), name, at)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        return Err(PickleError::StackUnderflow {
                            opcode: name,
                            offset: at,
                        });
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.new_push(Node::Tuple(items), name, at)?;
                }
                b']' => self.new_push(Node::List(Vec::new()), name, at)?,
                b'l' => {
                    let items = self.pop_mark(name, at)?;
                    self.new_push(Node::List(items), name, at)?;
                }
                b'}' => self.new_push(Node::Dict(Vec::new()), name, at)?,
                b'd' => {
                    let items = self.pop_mark(name, at)?;
                    let pairs = pairs(&items)
                        .ok_or_else(|| self.malformed(name, at, "odd number of items"))?;
                    self.new_push(Node::Dict(pairs), name, at)?;
                }
                0x8f => self.new_push(Node::Set(Vec::new()), name, at)?,
                0x91 => {
                    let items = self.pop_mark(name, at)?;
                    self.new_push(Node::Set(items), name, at)?;
                }
                b'a' => {
                    let v = self.pop(name, at)?;
                    let target = self.top(name, at)?;
                    self.extend_list(target, vec![v], name, at)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(name, at)?;
                    let target = self.top(name, at)?;
                    self.extend_list(target, items, name, at)?;
                }
                b's' => {
                    let v = self.pop(name, at)?;
                    let k = self.pop(name, at)?;
                    let target = self.top(name, at)?;
                    self.extend_dict(target, vec![(k, v)], name, at)?;
                }
                b'u' => {
                    let items = self.pop_mark(name, at)?;
                    let pairs = pairs(&items)
                        .ok_or_else(|| self.malformed(name, at, "odd number of items"))?;
                    let target = self.top(name, at)?;
                    self.extend_dict(target, pairs, name, at)?;
                }
                b'b' => {
                    let state = self.pop(name, at)?;
                    let target = self.top(name, at)?;
                    match &mut self.nodes[target] {
                        Node::Call {
                            state: s @ None, ..
                        } => *s = Some(state),
                        Node::Call { .. } => {
                            return Err(self.malformed(name, at, "BUILD twice on one object"));
                        }
                        _ => {
                            return Err(self.malformed(
                                name,
                                at,
                                "BUILD on a value that is not an object",
                            ));
                        }
                    }
                }
                b'c' => {
                    let module = self.line(name, at)?;
                    let gname = self.line(name, at)?;
                    self.push_global(module, gname, name, at)?;
                }
                0x93 => {
                    let gname = self.pop(name, at)?;
                    let module = self.pop(name, at)?;
                    let (Node::Str(m), Node::Str(n)) = (&self.nodes[module], &self.nodes[gname])
                    else {
                        return Err(self.malformed(name, at, "module and name must be strings"));
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.push_global(m, n, name, at)?;
                }
                b'i' => {
                    let module = self.line(name, at)?;
                    let gname = self.line(name, at)?;
                    let args = self.pop_mark(name, at)?;
                    let callable = self.global_node(module, gname, name, at)?;
                    let args = self.new_node(Node::Tuple(args), name, at)?;
                    self.push_call(callable, args, None, name, at)?;
                }
                b'o' => {
                    let mut items = self.pop_mark(name, at)?;
                    if items.is_empty() {
                        return Err(PickleError::StackUnderflow {
                            opcode: name,
                            offset: at,
                        });
                    }
                    let callable = items.remove(0);
                    let args = self.new_node(Node::Tuple(items), name, at)?;
                    self.push_call(callable, args, None, name, at)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop(name, at)?;
                    let callable = self.pop(name, at)?;
                    self.push_call(callable, args, None, name, at)?;
                }
                0x92 => {
                    let kwargs = self.pop(name, at)?;
                    let args = self.pop(name, at)?;
                    let callable = self.pop(name, at)?;
                    self.push_call(callable, args, Some(kwargs), name, at)?;
                }
                b'P' => {
                    let line = self.line(name, at)?;
                    let id = self.new_node(Node::Str(line), name, at)?;
                    self.new_push(Node::PersistentId(id), name, at)?;
                }
                b'Q' => {
                    let id = self.pop(name, at)?;
                    self.new_push(Node::PersistentId(id), name, at)?;
                }
                b'p' => {
                    let key = self
                        .line(name, at)?
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.malformed(name, at, "bad memo key"))?;
                    self.memo_put(key, name, at)?;
                }
                b'q' => {
                    let key = u64::from(self.take(1, name, at)?[0]);
                    self.memo_put(key, name, at)?;
                }
                b'r' => {
                    let key = u64::from(u32::from_le_bytes(
                        self.take(4, name, at)?.try_into().unwrap(),
                    ));
                    self.memo_put(key, name, at)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key, name, at)?;
                }
                b'g' => {
                    let key = self
                        .line(name, at)?
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.malformed(name, at, "bad memo key"))?;
                    self.memo_get(key, name, at)?;
                }
                b'h' => {
                    let key = u64::from(self.take(1, name, at)?[0]);
                    self.memo_get(key, name, at)?;
                }
                b'j' => {
                    let key = u64::from(u32::from_le_bytes(
                        self.take(4, name, at)?.try_into().unwrap(),
                    ));
                    self.memo_get(key, name, at)?;
                }
                0x82..=0x84 => {
                    return Err(PickleError::Unsupported {
                        opcode: name,
                        offset: at,
                        reason: "the copyreg extension registry names code by number".into(),
                    });
                }
                0x97 => {
                    return Err(PickleError::Unsupported {
                        opcode: name,
                        offset: at,
                        reason: "out-of-band buffers".into(),
                    });
                }
                0x98 => {}
                _ => {
                    return Err(PickleError::UnknownOpcode {
                        opcode: op,
                        offset: at,
                    });
                }
            }
        }
    }

    fn malformed(&self, opcode: &'static str, offset: usize, reason: &str) -> PickleError {
        PickleError::Malformed {
            opcode,
            offset,
            reason: reason.to_string(),
        }
    }

    fn limit(
        &self,
        opcode: &'static str,
        offset: usize,
        what: &'static str,
        limit: usize,
    ) -> PickleError {
        PickleError::Limit {
            opcode,
            offset,
            what,
            limit,
        }
    }

    fn take(&mut self, n: usize, opcode: &'static str, at: usize) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or(PickleError::Truncated { opcode, offset: at })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Takes `n` bytes for a string or bytes object, after checking the limit and what remains.
    fn take_len(
        &mut self,
        n: usize,
        opcode: &'static str,
        at: usize,
    ) -> Result<&'a [u8], PickleError> {
        if n > self.limits.max_str_len {
            return Err(self.limit(opcode, at, "string length", self.limits.max_str_len));
        }
        self.take(n, opcode, at)
    }

    fn len8(&mut self, opcode: &'static str, at: usize) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.take(8, opcode, at)?.try_into().unwrap());
        usize::try_from(n)
            .map_err(|_| self.limit(opcode, at, "string length", self.limits.max_str_len))
    }

    /// A newline-terminated text argument (protocol 0), at most 64 KiB.
    fn line(&mut self, opcode: &'static str, at: usize) -> Result<String, PickleError> {
        const MAX_LINE: usize = 1 << 16;
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(MAX_LINE + 1).position(|&c| c == b'\n');
        let Some(n) = n else {
            return if rest.len() <= MAX_LINE {
                Err(PickleError::Truncated { opcode, offset: at })
            } else {
                Err(self.limit(opcode, at, "text argument length", MAX_LINE))
            };
        };
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| self.malformed(opcode, at, "text argument is not UTF-8"))?
            .to_string();
        self.pos += n + 1;
        Ok(s)
    }

    fn new_node(
        &mut self,
        node: Node,
        opcode: &'static str,
        at: usize,
    ) -> Result<NodeId, PickleError> {
        if self.nodes.len() >= self.limits.max_nodes {
            return Err(self.limit(opcode, at, "number of values", self.limits.max_nodes));
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn push(&mut self, id: NodeId, opcode: &'static str, at: usize) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(self.limit(opcode, at, "stack size", self.limits.max_stack));
        }
        self.stack.push(id);
        Ok(())
    }

    fn new_push(&mut self, node: Node, opcode: &'static str, at: usize) -> Result<(), PickleError> {
        let id = self.new_node(node, opcode, at)?;
        self.push(id, opcode, at)
    }

    fn pop(&mut self, opcode: &'static str, at: usize) -> Result<NodeId, PickleError> {
        // A value below the innermost MARK belongs to an outer frame.
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(PickleError::StackUnderflow { opcode, offset: at });
        }
        self.stack
            .pop()
            .ok_or(PickleError::StackUnderflow { opcode, offset: at })
    }

    fn top(&self, opcode: &'static str, at: usize) -> Result<NodeId, PickleError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(PickleError::StackUnderflow { opcode, offset: at });
        }
        self.stack
            .last()
            .copied()
            .ok_or(PickleError::StackUnderflow { opcode, offset: at })
    }

    fn pop_mark(&mut self, opcode: &'static str, at: usize) -> Result<Vec<NodeId>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or(PickleError::NoMark { opcode, offset: at })?;
        Ok(self.stack.split_off(m))
    }

    fn global_node(
        &mut self,
        module: String,
        name: String,
        opcode: &'static str,
        at: usize,
    ) -> Result<NodeId, PickleError> {
        let import = Import {
            module: module.clone(),
            name: name.clone(),
        };
        if !self.imports.contains(&import) {
            self.imports.push(import);
        }
        self.new_node(Node::Global { module, name }, opcode, at)
    }

    fn push_global(
        &mut self,
        module: String,
        name: String,
        opcode: &'static str,
        at: usize,
    ) -> Result<(), PickleError> {
        let id = self.global_node(module, name, opcode, at)?;
        self.push(id, opcode, at)
    }

    fn push_call(
        &mut self,
        callable: NodeId,
        args: NodeId,
        kwargs: Option<NodeId>,
        opcode: &'static str,
        at: usize,
    ) -> Result<(), PickleError> {
        self.new_push(
            Node::Call {
                callable,
                args,
                kwargs,
                dict_items: Vec::new(),
                list_items: Vec::new(),
                state: None,
            },
            opcode,
            at,
        )
    }

    fn extend_list(
        &mut self,
        target: NodeId,
        items: Vec<NodeId>,
        opcode: &'static str,
        at: usize,
    ) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::List(v) | Node::Set(v) | Node::Call { list_items: v, .. } => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.malformed(opcode, at, "append to a value that is not a list")),
        }
    }

    fn extend_dict(
        &mut self,
        target: NodeId,
        items: Vec<(NodeId, NodeId)>,
        opcode: &'static str,
        at: usize,
    ) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::Dict(v) | Node::Call { dict_items: v, .. } => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.malformed(opcode, at, "set an item on a value that is not a dict")),
        }
    }

    fn memo_put(&mut self, key: u64, opcode: &'static str, at: usize) -> Result<(), PickleError> {
        let top = self.top(opcode, at)?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(self.limit(opcode, at, "memo size", self.limits.max_memo));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, opcode: &'static str, at: usize) -> Result<(), PickleError> {
        let id = *self.memo.get(&key).ok_or(PickleError::MissingMemo {
            opcode,
            offset: at,
            key,
        })?;
        self.push(id, opcode, at)
    }
}

fn pairs(items: &[NodeId]) -> Option<Vec<(NodeId, NodeId)>> {
    if !items.len().is_multiple_of(2) {
        return None;
    }
    Some(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

/// LONG1/LONG4 payload: little-endian two's complement.
fn long_from_le(b: &[u8]) -> Node {
    if b.is_empty() {
        return Node::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        return Node::Int(i64::from_le_bytes(buf));
    }
    Node::BigInt(b.to_vec())
}

/// A protocol-0 STRING literal: `'...'` or `"..."` with Python escapes.
fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b[b.len() - 1] || !matches!(b[0], b'\'' | b'"') {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// A protocol-0 UNICODE literal ("raw-unicode-escape": only `\uXXXX` and `\UXXXXXXXX`).
fn unescape_raw_unicode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let width = match after.as_bytes().first() {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => 0,
        };
        let code = after
            .get(1..1 + width)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) if width > 0 => {
                out.push(c);
                rest = &after[1 + width..];
            }
            _ => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether the bytes start like a pickle of protocol 2 or later (`PROTO n`).
pub fn looks_like(prefix: &[u8]) -> bool {
    prefix.len() >= 2 && prefix[0] == 0x80 && (2..=5).contains(&prefix[1])
}
