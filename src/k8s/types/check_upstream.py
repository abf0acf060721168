#!/usr/bin/env python3
"""Checks the .proto files of this folder against Kubernetes' own (a developer tool, run by hand).

    check_upstream.py API_DIR APIMACHINERY_DIR

API_DIR and APIMACHINERY_DIR are checkouts of github.com/kubernetes/api and
github.com/kubernetes/apimachinery at the version the .proto files name (v0.28.15). For every
message written here it checks, against the upstream generated.proto, that it has exactly the
upstream fields (label, type, name, number), and, against the Go struct tags of types.go, that
each field's (etcdsafe.k8sjson.emit) option says what encoding/json does with it:
  `json:",inline"` -> INLINE; a pointer (*T) -> WHEN_SET; a non-pointer struct or a field
  without omitempty -> ALWAYS; otherwise omitempty (no option on a scalar/repeated field).
Time, MicroTime, Quantity, IntOrString and FieldsV1 have custom JSON marshalers (not checked).
Prints every difference; exits 1 if there is any.
"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCALARS = {'string', 'int32', 'int64', 'bool', 'bytes', 'double', 'float'}
CUSTOM_JSON = {'Time', 'MicroTime', 'Quantity', 'IntOrString', 'FieldsV1'}
FIELD_RE = re.compile(r'(optional|repeated)?\s*(map<\s*[\w.]+\s*,\s*[\w.]+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;')


def parse_proto(path):
    text = re.sub(r'//[^\n]*', '', open(path).read())
    pkg = re.search(r'package\s+([\w.]+);', text).group(1)
    msgs = {}
    for m in re.finditer(r'message\s+(\w+)\s*\{', text):
        i, depth, j = m.end(), 1, m.end()
        while depth:
            depth += {'{': 1, '}': -1}.get(text[j], 0)
            j += 1
        fields = {}
        for f in FIELD_RE.finditer(text[i:j - 1]):
            label, typ, name, num, opts = f.groups()
            typ = re.sub(r'\s+', '', typ)
            emit = re.search(r'\(etcdsafe\.k8sjson\.emit\)\s*=\s*(\w+)', opts or '')
            fields[int(num)] = dict(label=label or '', type=typ, name=name, emit=emit.group(1) if emit else '')
        msgs[pkg + '.' + m.group(1)] = (pkg, fields)
    return msgs


def norm_type(typ, pkg, known):
    mm = re.match(r'map<(\w+),([\w.]+)>', typ)
    if mm:
        return 'map<%s,%s>' % (mm.group(1), norm_type(mm.group(2), pkg, known))
    if typ in SCALARS or typ in known:
        return typ
    return pkg + '.' + typ if pkg + '.' + typ in known else typ


def parse_go(path):
    out = {}
    text = open(path).read()
    for m in re.finditer(r'^type (\w+) struct \{\n(.*?)^\}', text, re.S | re.M):
        fields = {}
        for line in m.group(2).split('\n'):
            line = line.strip()
            fm = re.match(r'(\w+)?\s*([^`]*?)\s*`(.*)`', line)
            if line.startswith('//') or not fm:
                continue
            goname, gotype, tags = fm.groups()
            if goname and not gotype:
                gotype = goname
            j = re.search(r'json:"([^"]*)"', tags)
            p = re.search(r'protobuf:"([^"]*)"', tags)
            if not p or len(p.group(1).split(',')) < 2:
                continue
            jparts = (j.group(1) if j else '').split(',')
            fields[int(p.group(1).split(',')[1])] = dict(gotype=gotype.strip(), json=jparts[0],
                                                         omitempty='omitempty' in jparts[1:],
                                                         inline='inline' in jparts[1:])
        out[m.group(1)] = fields
    return out


def main():
    api, am = sys.argv[1], sys.argv[2]
    groups = {'k8s.io.api.core.v1': api + '/core/v1', 'k8s.io.api.apps.v1': api + '/apps/v1',
              'k8s.io.api.batch.v1': api + '/batch/v1', 'k8s.io.api.coordination.v1': api + '/coordination/v1',
              'k8s.io.api.rbac.v1': api + '/rbac/v1', 'k8s.io.apimachinery.pkg.apis.meta.v1': am + '/pkg/apis/meta/v1',
              'k8s.io.apimachinery.pkg.api.resource': am + '/pkg/api/resource',
              'k8s.io.apimachinery.pkg.util.intstr': am + '/pkg/util/intstr'}
    upstream, go = {}, {}
    for pkg, d in groups.items():
        upstream.update(parse_proto(d + '/generated.proto'))
        for f in glob.glob(d + '/*.go'):
            if not f.endswith('_test.go') and 'generated' not in f:
                go.update({pkg + '.' + k: v for k, v in parse_go(f).items()})
    mine = {}
    for f in sorted(glob.glob(HERE + '/*.proto')):
        if not f.endswith('json_options.proto'):
            mine.update(parse_proto(f))
    known = set(upstream) | set(mine)
    errors = []
    nfields = 0
    for name, (pkg, fields) in sorted(mine.items()):
        if name not in upstream:
            errors.append('%s: not in upstream' % name)
            continue
        upkg, ufields = upstream[name]
        for num in sorted(set(fields) | set(ufields)):
            a, b = fields.get(num), ufields.get(num)
            where = '%s field %d' % (name, num)
            if not a or not b:
                errors.append('%s: %s' % (where, 'missing here' if not a else 'not upstream'))
                continue
            nfields += 1
            ta, tb = norm_type(a['type'], pkg, known), norm_type(b['type'], upkg, known)
            if (a['label'], ta, a['name']) != (b['label'], tb, b['name']):
                errors.append('%s: here %s %s %s, upstream %s %s %s' % (where, a['label'], ta, a['name'], b['label'],
                                                                       tb, b['name']))
            if name.rsplit('.', 1)[1] in CUSTOM_JSON:
                continue
            g = go.get(name, {}).get(num)
            if g is None:
                errors.append('%s: no Go field' % where)
                continue
            is_msg = ta not in SCALARS and not ta.startswith('map<') and a['label'] != 'repeated'
            if g['inline']:
                want = 'INLINE'
            elif g['gotype'].startswith('*'):
                want = 'WHEN_SET'
            elif is_msg or not g['omitempty']:
                want = 'ALWAYS'
            else:
                want = ''
            have = a['emit'] or ('WHEN_SET' if is_msg else '')
            want = want or ('WHEN_SET' if is_msg else '')
            if have != want:
                errors.append('%s (%s, Go %s %s): option %s, Go tags say %s' % (
                    where, a['name'], g['gotype'], 'omitempty' if g['omitempty'] else '', have or 'omitempty',
                    want or 'omitempty'))
    for e in errors:
        print(e)
    print('%d messages, %d fields checked, %d differences' % (len(mine), nfields, len(errors)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
