package engine

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

// Sized operators: the allocations a run makes in one Starlark step are
// asked for before they are made.
//
// A Starlark `s + s` or `s * n` is one Go allocation inside go.starlark.net,
// with no hook: thirty doublings of a string reach a gigabyte in thirty
// steps, and the memory guard, which samples the heap, can only act after
// the step that took the heap over the limit — so the agent's peak was the
// limit plus the last allocation (1,071 MiB at 512 MiB). When a file is
// compiled, every binary `+` and `*`, and `x += y` / `x *= y` on a plain
// name, is rewritten (a `+` with a literal operand is left alone: it grows
// by the literal, one step at a time) into a call of a predeclared operator below
// (sizedAdd, sizedMul, sizedIAdd); each computes the size of its result
// from its operands' lengths and, above sizedCheckFrom bytes, asks the
// run's memory budget (builtins.Env.Reserve) first, then performs the
// operator exactly as Starlark does. Errors and results are Starlark's
// own; the position of an error is the operator's. `x += y` on anything
// but a name (a[i] += y) is left alone, since rewriting it would evaluate
// a[i] twice.
//
// The same goes for `%` formatting (unless its right operand is a
// literal) and the string methods that can grow a string many times in
// one call, x.replace(old, new) and sep.join(seq) (sizedMethod).
//
// What stays outside: allocations by other builtins in one call (str or
// repr of a deep DAG, the other methods), which the sampling guard still
// stops after the fact.

// Names of the rewritten operators. They are predeclared in every file
// the Loader compiles and never documented: a playbook does not call them.
const (
	sizedAddName  = "__felhom_add"
	sizedMulName  = "__felhom_mul"
	sizedIAddName = "__felhom_iadd"
	sizedModName  = "__felhom_mod"
	sizedCallName = "__felhom_method" // x.replace(...), x.join(...)
)

// sizedMethods are the string methods whose result may be much larger
// than their operands; a call x.NAME(...) of one is rewritten into
// __felhom_method(x, "NAME", ...).
var sizedMethods = map[string]bool{"replace": true, "join": true}

// sizedCheckFrom is the result size from which an operator asks the
// budget: below it the question (a heap sample) would cost more than the
// allocation risks.
const sizedCheckFrom = 1 << 20

// valueBytes is what one element of a list or tuple takes (an interface).
const valueBytes = 16

// sizedPredeclared are the operators, for a Loader's predeclared names.
var sizedPredeclared = starlark.StringDict{
	sizedAddName:  starlark.NewBuiltin(sizedAddName, sizedAdd),
	sizedMulName:  starlark.NewBuiltin(sizedMulName, sizedMul),
	sizedIAddName: starlark.NewBuiltin(sizedIAddName, sizedIAdd),
	sizedModName:  starlark.NewBuiltin(sizedModName, sizedMod),
	sizedCallName: starlark.NewBuiltin(sizedCallName, sizedMethod),
}

// reserve asks the run's budget for n bytes when n is large enough to ask.
func reserve(thread *starlark.Thread, n uint64) error {
	if n < sizedCheckFrom {
		return nil
	}
	if env := builtins.EnvOf(thread); env != nil && env.Reserve != nil {
		return env.Reserve(n)
	}
	return nil
}

// seqBytes is the size of a string, bytes, list or tuple's contents, and
// whether v is one.
func seqBytes(v starlark.Value) (uint64, bool) {
	switch x := v.(type) {
	case starlark.String:
		return uint64(len(x)), true
	case starlark.Bytes:
		return uint64(len(x)), true
	case *starlark.List:
		return uint64(x.Len()) * valueBytes, true
	case starlark.Tuple:
		return uint64(len(x)) * valueBytes, true
	}
	return 0, false
}

// starlarkMaxAlloc is go.starlark.net's bound on a repeat's elements
// (eval.go maxAlloc): a repeat to that many or more is refused there.
const starlarkMaxAlloc = 1 << 30

// seqLen is the number of elements of a string (its bytes), bytes, list
// or tuple, as Starlark's repeat counts them.
func seqLen(v starlark.Value) uint64 {
	if s, ok := v.(interface{ Len() int }); ok {
		return uint64(s.Len())
	}
	return 0
}

// intBytes is the size of an int's magnitude.
func intBytes(v starlark.Int) uint64 {
	if _, ok := v.Int64(); ok {
		return 8
	}
	return uint64(v.BigInt().BitLen()+7) / 8
}

func binaryArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (x, y starlark.Value, err error) {
	if len(args) != 2 || len(kwargs) != 0 {
		return nil, nil, fmt.Errorf("%s: takes exactly 2 positional arguments", b.Name())
	}
	return args[0], args[1], nil
}

// sizedAdd is x + y.
func sizedAdd(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y, err := binaryArgs(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := reserve(thread, addBytes(x, y)); err != nil {
		return nil, err
	}
	return starlark.Binary(syntax.PLUS, x, y)
}

// addBytes is the size of x + y, 0 when neither grows.
func addBytes(x, y starlark.Value) uint64 {
	if xi, ok := x.(starlark.Int); ok {
		if yi, ok := y.(starlark.Int); ok {
			return max(intBytes(xi), intBytes(yi))
		}
		return 0
	}
	nx, ok1 := seqBytes(x)
	ny, ok2 := seqBytes(y)
	if !ok1 || !ok2 {
		return 0
	}
	return nx + ny
}

// sizedMul is x * y.
func sizedMul(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y, err := binaryArgs(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := reserve(thread, mulBytes(x, y)); err != nil {
		return nil, err
	}
	return starlark.Binary(syntax.STAR, x, y)
}

// mulBytes is the size of x * y (saturating), 0 when it does not grow.
func mulBytes(x, y starlark.Value) uint64 {
	xi, xInt := x.(starlark.Int)
	yi, yInt := y.(starlark.Int)
	switch {
	case xInt && yInt:
		return intBytes(xi) + intBytes(yi)
	case yInt:
		return repeatBytes(x, yi)
	case xInt:
		return repeatBytes(y, xi)
	}
	return 0
}

// repeatBytes is the size of seq repeated n times, saturating at the
// largest uint64; 0 for a repeat that Starlark refuses itself before it
// allocates anything (a count beyond int32, or 2^30 elements or more:
// go.starlark.net eval.go tupleRepeat, stringRepeat, maxAlloc), so that
// its own, more exact message ("repeat count N too large", "excessive
// repeat (a * b elements)") is the one the run gets.
func repeatBytes(seq starlark.Value, n starlark.Int) uint64 {
	size, ok := seqBytes(seq)
	if !ok {
		return 0
	}
	k, ok := n.Uint64()
	if !ok {
		return 0 // negative (empty), or beyond int32: Starlark refuses it
	}
	if k > math.MaxInt32 {
		return 0
	}
	if hi, lo := bits.Mul64(seqLen(seq), k); hi != 0 || lo >= starlarkMaxAlloc {
		return 0
	}
	hi, lo := bits.Mul64(size, k)
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// sizedMod is x % y: for a format string, the result is at most the
// format plus the strings it is given (other values format small, or
// from what the run already holds).
func sizedMod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y, err := binaryArgs(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	if f, ok := x.(starlark.String); ok {
		n := uint64(len(f))
		switch y := y.(type) {
		case starlark.String:
			n += uint64(len(y)) * uint64(max(strings.Count(string(f), "%"), 1))
		case starlark.Tuple:
			for _, e := range y {
				if s, ok := e.(starlark.String); ok {
					n += uint64(len(s))
				}
			}
		}
		if err := reserve(thread, builderBytes(n)); err != nil {
			return nil, err
		}
	}
	return starlark.Binary(syntax.PERCENT, x, y)
}

// sizedMethod is x.NAME(args...) for the methods of sizedMethods: for a
// string x, the result's size is asked for first; then the method is
// called as Starlark would (any other x, or name, just calls through).
func sizedMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("%s: want the receiver and the method name", b.Name())
	}
	x, name := args[0], string(args[1].(starlark.String))
	rest := args[2:]
	if s, ok := x.(starlark.String); ok {
		if err := reserve(thread, methodBytes(string(s), name, rest)); err != nil {
			return nil, err
		}
	}
	h, ok := x.(starlark.HasAttrs)
	if !ok {
		return nil, fmt.Errorf("%s has no .%s field or method", x.Type(), name)
	}
	fn, err := h.Attr(name)
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%s has no .%s field or method", x.Type(), name)
	}
	return starlark.Call(thread, fn, rest, kwargs)
}

// methodBytes is the size of s.name(args...), 0 when unknown.
func methodBytes(s, name string, args starlark.Tuple) uint64 {
	switch name {
	case "replace":
		if len(args) < 2 {
			return 0
		}
		old, ok1 := args[0].(starlark.String)
		repl, ok2 := args[1].(starlark.String)
		if !ok1 || !ok2 || len(repl) <= len(old) {
			return 0
		}
		n := uint64(len(s) + 1) // an empty old matches between every byte
		if len(old) > 0 {
			n = uint64(strings.Count(s, string(old)))
		}
		hi, lo := bits.Mul64(n, uint64(len(repl)-len(old)))
		if hi != 0 {
			return math.MaxUint64
		}
		return lo + uint64(len(s))
	case "join":
		if len(args) != 1 {
			return 0
		}
		seq, ok := args[0].(starlark.Indexable)
		if !ok {
			return 0
		}
		total := uint64(max(seq.Len()-1, 0)) * uint64(len(s))
		for i := range seq.Len() {
			if e, ok := seq.Index(i).(starlark.String); ok {
				total += uint64(len(e))
			}
		}
		return builderBytes(total)
	}
	return 0
}

// builderBytes is what building a result of n bytes in a
// strings.Builder without Grow can hold at its peak, as go.starlark.net
// builds sep.join(seq) and f % args: the builder's old buffer and the
// one it grows into, about twice the result (asking for n alone let a
// join pass the reservation and the heap sampler stop the run instead).
func builderBytes(n uint64) uint64 {
	if n > math.MaxUint64/2 {
		return math.MaxUint64
	}
	return 2 * n
}

// sizedIAdd is x += y on a name: a list is extended in place and returned
// (Starlark's rule for lists), anything else is x + y.
func sizedIAdd(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, y, err := binaryArgs(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	list, ok := x.(*starlark.List)
	if !ok {
		return sizedAdd(thread, b, args, kwargs)
	}
	iter, ok := y.(starlark.Iterable)
	if !ok {
		return starlark.Binary(syntax.PLUS, x, y) // Starlark's own error
	}
	var elems []starlark.Value
	if seq, ok := y.(starlark.Indexable); ok {
		// A snapshot first, so that l += l doubles l instead of iterating
		// a list that grows.
		n := seq.Len()
		if err := reserve(thread, uint64(list.Len()+n)*valueBytes); err != nil {
			return nil, err
		}
		elems = make([]starlark.Value, n)
		for i := range n {
			elems[i] = seq.Index(i)
		}
	} else {
		it := iter.Iterate()
		var e starlark.Value
		for it.Next(&e) {
			elems = append(elems, e)
		}
		it.Done()
	}
	for _, e := range elems {
		// Append refuses a frozen list (or one being iterated) before it
		// changes anything; the message is Starlark's for +=.
		if err := list.Append(e); err != nil {
			if rest, ok := strings.CutPrefix(err.Error(), "cannot append to "); ok {
				return nil, fmt.Errorf("cannot apply += to %s", rest)
			}
			return nil, err
		}
	}
	return list, nil
}

// rewriteSized rewrites the operators of f's statements into the sized
// operators' calls; see the top of this file.
func rewriteSized(f *syntax.File) {
	r := sizedRewriter{}
	for _, st := range f.Stmts {
		r.stmt(st)
	}
}

type sizedRewriter struct{}

func (r sizedRewriter) stmts(ss []syntax.Stmt) {
	for _, s := range ss {
		r.stmt(s)
	}
}

func (r sizedRewriter) stmt(s syntax.Stmt) {
	switch s := s.(type) {
	case *syntax.AssignStmt:
		r.target(s.LHS)
		s.RHS = r.expr(s.RHS)
		if id, ok := s.LHS.(*syntax.Ident); ok && (s.Op == syntax.PLUS_EQ && !isLiteral(s.RHS) || s.Op == syntax.STAR_EQ) {
			name := sizedIAddName
			if s.Op == syntax.STAR_EQ {
				name = sizedMulName
			}
			s.RHS = sizedCall(name, s.OpPos, &syntax.Ident{NamePos: id.NamePos, Name: id.Name}, s.RHS)
			s.Op = syntax.EQ
		}
	case *syntax.DefStmt:
		r.params(s.Params)
		r.stmts(s.Body)
	case *syntax.ExprStmt:
		s.X = r.expr(s.X)
	case *syntax.ForStmt:
		r.target(s.Vars)
		s.X = r.expr(s.X)
		r.stmts(s.Body)
	case *syntax.WhileStmt:
		s.Cond = r.expr(s.Cond)
		r.stmts(s.Body)
	case *syntax.IfStmt:
		s.Cond = r.expr(s.Cond)
		r.stmts(s.True)
		r.stmts(s.False)
	case *syntax.ReturnStmt:
		if s.Result != nil {
			s.Result = r.expr(s.Result)
		}
	}
}

// target rewrites the expressions inside an assignment target (indexes,
// the objects of dots), never the target itself.
func (r sizedRewriter) target(e syntax.Expr) {
	switch e := e.(type) {
	case *syntax.IndexExpr:
		e.X = r.expr(e.X)
		e.Y = r.expr(e.Y)
	case *syntax.DotExpr:
		e.X = r.expr(e.X)
	case *syntax.ListExpr:
		for _, x := range e.List {
			r.target(x)
		}
	case *syntax.TupleExpr:
		for _, x := range e.List {
			r.target(x)
		}
	case *syntax.ParenExpr:
		r.target(e.X)
	}
}

// params rewrites default values: a parameter is a name, name = default
// (a BinaryExpr with Op EQ), *args or **kwargs.
func (r sizedRewriter) params(ps []syntax.Expr) {
	for _, p := range ps {
		if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
			b.Y = r.expr(b.Y)
		}
	}
}

func (r sizedRewriter) exprs(es []syntax.Expr) {
	for i, e := range es {
		es[i] = r.expr(e)
	}
}

func (r sizedRewriter) expr(e syntax.Expr) syntax.Expr {
	switch e := e.(type) {
	case *syntax.BinaryExpr:
		e.X, e.Y = r.expr(e.X), r.expr(e.Y)
		switch e.Op {
		case syntax.PLUS:
			if isLiteral(e.X) || isLiteral(e.Y) {
				break // grows by at most the literal: the step-sampling guard's business
			}
			return sizedCall(sizedAddName, e.OpPos, e.X, e.Y)
		case syntax.STAR:
			return sizedCall(sizedMulName, e.OpPos, e.X, e.Y)
		case syntax.PERCENT:
			if !isLiteral(e.Y) {
				return sizedCall(sizedModName, e.OpPos, e.X, e.Y)
			}
		}
	case *syntax.CallExpr:
		e.Fn = r.expr(e.Fn)
		r.exprs(e.Args) // name = value arguments are EQ BinaryExprs: only their values change
		if dot, ok := e.Fn.(*syntax.DotExpr); ok && sizedMethods[dot.Name.Name] {
			recv := dot.X
			name := &syntax.Literal{Token: syntax.STRING, TokenPos: dot.Name.NamePos, Raw: strconv.Quote(dot.Name.Name), Value: dot.Name.Name}
			e.Fn = &syntax.Ident{NamePos: e.Lparen, Name: sizedCallName}
			e.Args = append([]syntax.Expr{recv, name}, e.Args...)
		}
	case *syntax.Comprehension:
		e.Body = r.expr(e.Body)
		for _, c := range e.Clauses {
			switch c := c.(type) {
			case *syntax.ForClause:
				r.target(c.Vars)
				c.X = r.expr(c.X)
			case *syntax.IfClause:
				c.Cond = r.expr(c.Cond)
			}
		}
	case *syntax.CondExpr:
		e.Cond, e.True, e.False = r.expr(e.Cond), r.expr(e.True), r.expr(e.False)
	case *syntax.DictEntry:
		e.Key, e.Value = r.expr(e.Key), r.expr(e.Value)
	case *syntax.DictExpr:
		r.exprs(e.List)
	case *syntax.DotExpr:
		e.X = r.expr(e.X)
	case *syntax.IndexExpr:
		e.X, e.Y = r.expr(e.X), r.expr(e.Y)
	case *syntax.LambdaExpr:
		r.params(e.Params)
		e.Body = r.expr(e.Body)
	case *syntax.ListExpr:
		r.exprs(e.List)
	case *syntax.ParenExpr:
		e.X = r.expr(e.X)
	case *syntax.SliceExpr:
		for _, p := range []*syntax.Expr{&e.X, &e.Lo, &e.Hi, &e.Step} {
			if *p != nil {
				*p = r.expr(*p)
			}
		}
	case *syntax.TupleExpr:
		r.exprs(e.List)
	case *syntax.UnaryExpr:
		if e.X != nil {
			e.X = r.expr(e.X)
		}
	}
	return e
}

// isLiteral reports whether e is a literal (a string, bytes or number of
// the source). A + with one cannot make more than its other operand plus
// the literal: n + 1, s + "\n".
func isLiteral(e syntax.Expr) bool {
	_, ok := e.(*syntax.Literal)
	return ok
}

// sizedCall is name(x, y) placed at the operator, so that an error (and
// a backtrace) points where the operator was.
func sizedCall(name string, pos syntax.Position, x, y syntax.Expr) *syntax.CallExpr {
	return &syntax.CallExpr{
		Fn:     &syntax.Ident{NamePos: pos, Name: name},
		Lparen: pos,
		Args:   []syntax.Expr{x, y},
		Rparen: pos,
	}
}
