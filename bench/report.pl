#!/usr/bin/perl
# bench/report.pl RESULTS_DIR: turns what bench/run.sh recorded there
# (meta.tsv, cases.tsv, runs.tsv, churn.tsv, horizon.tsv, notes.txt) into
# latest.md and latest.json. Medians, min and max per side; the ratio is
# qml's median over the baseline's. Numbers only: nothing here says pass or
# fail, but for the held xmin horizon's three targets, whose verdict issue 19
# asks for beside their ratios.
use strict;
use warnings;

my $dir = shift or die "usage: report.pl RESULTS_DIR\n";

sub lines {
	my ($f) = @_;
	open(my $h, '<', "$dir/$f") or return ();
	my @l = map { chomp; $_ } <$h>;
	close $h;
	return @l;
}

my %meta;
my @meta_order;
for (lines('meta.tsv')) {
	my ($k, $v) = split /\t/, $_, 2;
	push @meta_order, $k unless exists $meta{$k};
	$meta{$k} = $v // '';
}

my (@passes, %rows);
for (lines('cases.tsv')) {
	my ($pass, $key, $name, $unit, $ql, $bl, $target, $secs) = split /\t/, $_, -1;
	next if $rows{$pass}{$key};
	push @passes, $pass unless grep { $_ eq $pass } @passes;
	$rows{$pass}{$key} = { key => $key, name => $name, unit => $unit, qml_label => $ql,
		base_label => $bl, target => $target // '', secs => $secs // '', qml => [], base => [], notes => [],
		order => scalar keys %{ $rows{$pass} } };
}
for (lines('runs.tsv')) {
	my ($pass, $key, $side, $value, $note) = split /\t/, $_, -1;
	my $r = $rows{$pass}{$key} or next;
	push @{ $r->{$side} }, $value + 0 if defined $value && $value ne '';
	push @{ $r->{notes} }, $note if defined $note && $note ne '' && !grep { $_ eq $note } @{ $r->{notes} };
}

sub stats {
	my @v = sort { $a <=> $b } @_;
	return undef unless @v;
	my $n = @v;
	my $med = $n % 2 ? $v[($n - 1) / 2] : ($v[$n / 2 - 1] + $v[$n / 2]) / 2;
	return { median => $med, min => $v[0], max => $v[-1], runs => [@_] };
}

sub num {
	my ($v) = @_;
	return '' unless defined $v;
	my $s = abs($v) >= 100 ? sprintf('%.0f', $v) : abs($v) >= 10 ? sprintf('%.1f', $v) : sprintf('%.2f', $v);
	1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/;
	return $s;
}

sub int_fmt {
	my ($v) = @_;
	my $s = sprintf('%.0f', $v // 0);
	1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/;
	return $s;
}

sub jstr {
	my ($s) = @_;
	return 'null' unless defined $s;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/\n/\\n/g;
	$s =~ s/\t/\\t/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
	return "\"$s\"";
}

sub jnum { my ($v) = @_; return defined $v ? 0 + sprintf('%.3f', $v) : 'null' }

sub jside {
	my ($label, $st) = @_;
	return 'null' unless $st || $label ne '';
	return sprintf('{"label": %s, "median": %s, "min": %s, "max": %s, "runs": [%s]}',
		jstr($label), map({ jnum($st ? $st->{$_} : undef) } qw(median min max)),
		$st ? join(', ', map { jnum($_) } @{ $st->{runs} }) : '');
}

# The previous run's figures (BENCH_PREVIOUS: an earlier latest.md, such
# as bench/RESULTS.md), shown beside each case of the same name and pass.
my (%prev, $prev_run);
if (my $pf = $ENV{BENCH_PREVIOUS}) {
	open(my $h, '<', $pf) or die "report.pl: cannot read $pf: $!\n";
	my $pass = '';
	while (<$h>) {
		chomp;
		$prev_run //= $1 if /^(\d{4}-\d\d-\d\d \d\d:\d\d UTC.*?qml \w+)\./;
		$pass = $1 if /^## (.*)/;
		next unless /^\| / && !/^\| case \|/ && !/^\|---/;
		my @c = map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $_;
		shift @c;
		next if @c < 6;	# another table (churn)
		(my $name = $c[0]) =~ s/ \[[^\]]*\]$//;
		$prev{$pass}{$name} = $c[3] ne '' ? "$c[1]; $c[3]" : $c[1];
	}
	close $h;
}
my $prev_col = %prev ? ' previous (qml; ratio) |' : '';

my @md;
my @json_passes;
push @md, "# qml benchmark ($meta{mode} mode)", '';
push @md, "$meta{date} on $meta{machine}. $meta{postgres}; qml $meta{qml}.";
push @md, "Cluster: $meta{settings}.";
my $secs = $meta{duration} . (($meta{duration_main} // $meta{duration}) ne $meta{duration}
	? " s each ($meta{duration_main} s where issue 5 sets a target, as the outside check measures)" : ' s each');
push @md, "Every case ran $meta{runs} time(s) for $secs (pgbench -M prepared unless said);"
	. " medians; ratio = qml median / baseline median (for ms and µs, lower is better). Wall time $meta{wall}.", '';
push @md, "Previous: the run of $prev_run, for the cases of the same name.", '' if %prev;

for my $pass (@passes) {
	push @md, "## $pass", '';
	push @md, "| case | qml median | baseline median | ratio | min-max (qml; baseline) |$prev_col target |";
	push @md, '|---|---:|---:|---:|---|' . ($prev_col ? '---|' : '') . '---|';
	my @jcases;
	for my $r (sort { $a->{order} <=> $b->{order} } values %{ $rows{$pass} }) {
		my $q = stats(@{ $r->{qml} });
		my $b = stats(@{ $r->{base} });
		my $ratio = ($q && $b && $b->{median}) ? $q->{median} / $b->{median} : undef;
		my $u = $r->{unit};
		my $what = $r->{base_label} ne '' ? "$r->{qml_label} vs $r->{base_label}" : $r->{qml_label};
		my $qcell = $q ? num($q->{median}) . " $u" : (@{ $r->{notes} } ? $r->{notes}[0] : 'no result');
		my $bcell = $b ? num($b->{median}) . " $u" : '';
		my $range = join('; ', grep { $_ ne '' }
			($q ? num($q->{min}) . '-' . num($q->{max}) : ''), ($b ? num($b->{min}) . '-' . num($b->{max}) : ''));
		my @notes = $q ? @{ $r->{notes} } : @{ $r->{notes} }[1 .. $#{ $r->{notes} }];
		my $name = "$r->{name}: $what";
		$name .= " ($r->{secs} s runs)" if $r->{secs} ne '' && $r->{secs} ne $meta{duration} && $r->{unit} ne 'ms';
		$name =~ s/\|/\\|/g;
		my $pcell = $prev_col ? ' ' . ($prev{$pass}{$name} // '') . ' |' : '';
		$name .= ' [' . join('; ', @notes) =~ s/\|/\\|/gr . ']' if @notes;
		push @md, "| $name | $qcell | $bcell | " . (defined $ratio ? sprintf('%.2f', $ratio) : '') . " | $range |$pcell $r->{target} |";
		push @jcases, sprintf('{"key": %s, "case": %s, "unit": %s, "seconds": %s, "qml": %s, "baseline": %s, "ratio": %s, "target": %s, "notes": [%s]}',
			jstr($r->{key}), jstr($r->{name}), jstr($u), $r->{secs} =~ /^\d+$/ ? $r->{secs} : 'null', jside($r->{qml_label}, $q),
			$r->{base_label} ne '' || $b ? jside($r->{base_label}, $b) : 'null',
			defined $ratio ? jnum($ratio) : 'null', jstr($r->{target} eq '' ? undef : $r->{target}),
			join(', ', map { jstr($_) } @{ $r->{notes} }));
	}
	push @md, '';
	push @json_passes, sprintf("    {\"pass\": %s, \"cases\": [\n      %s\n    ]}", jstr($pass), join(",\n      ", @jcases));
}

my @churn = lines('churn.tsv');
my @jchurn;
if (@churn > 1) {
	push @md, '## Churn, minute by minute (qml.jobs)', '';
	push @md, '| minute | jobs/s | waiting | table MB | indexes MB | dead tuples | autovacuum runs |';
	push @md, '|---:|---:|---:|---:|---:|---:|---:|';
	for (@churn[1 .. $#churn]) {
		my ($m, $done, $wait, $tb, $ib, $dead, $av) = split /\t/;
		push @md, sprintf('| %s | %s | %s | %.1f | %.1f | %s | %s |', $m, int_fmt($done / 60), int_fmt($wait), $tb / 1048576, $ib / 1048576, int_fmt($dead), $av);
		push @jchurn, sprintf('{"minute": %d, "jobs_per_s": %s, "waiting": %d, "table_bytes": %d, "index_bytes": %d, "dead_tuples": %d, "autovacuum_runs": %d}',
			$m, jnum($done / 60), $wait, $tb, $ib, $dead, $av);
	}
	push @md, '';
}

# the held xmin horizon (bench/horizon.sh): its targets, then window by window
my (%hz, @hzwin, @jhzwin);
for (lines('horizon.tsv')) {
	my @f = split /\t/;
	if ($f[0] eq 'summary') { $hz{$f[1]}{$f[2]} = $f[3]; }
	elsif ($f[0] eq 'window') { push @hzwin, [@f[1 .. $#f]]; }
}
if (%hz || @hzwin) {
	my ($any) = grep { defined } map { $hz{$_}{after_s} } sort keys %hz;
	my $after = defined $any ? sprintf('%.0f', $any) : '?';
	my @targets = (['jobs/s during the hold / before it', 'rate_hold', 'rate_before', '>=', 0.9],
		['claim latency p99 (ms) during the hold / before it', 'p99_hold', 'p99_before', '<=', 2],
		["tables and indexes (MB) $after s after the hold / before it", 'size_after', 'size_before', '<=', 1.2]);
	my $cell = sub {
		my ($s, $t) = @_;
		my ($a, $b) = ($hz{$s}{ $t->[1] }, $hz{$s}{ $t->[2] });
		return ('no result', '') unless defined $a && defined $b && $b > 0;
		my $r = $a / $b;
		my $ok = $t->[3] eq '>=' ? $r >= $t->[4] : $r <= $t->[4];
		return (num($a) . ' / ' . num($b) . ' = ' . sprintf('%.2f', $r), $ok ? 'met' : 'missed');
	};
	push @md, '## Held xmin horizon (issue 19)', '';
	push @md, 'qml through libqml\'s runtime, and the raw baseline (SKIP LOCKED claim, then DELETE) run before it with the same phases;'
		. ' claim latency from the commit of a job\'s batch to its handler starting (raw: its claim returning);'
		. ' size: every table of schema qml with its indexes (raw: its table).';
	my %ph = map { $_ => $hz{qml}{$_} // $hz{raw}{$_} } qw(offered before_s hold_s after_s window_s);
	$md[-1] .= sprintf(' %s jobs/s offered; %s s of flow, a snapshot held %s s, %s s more; windows of %s s; qml\'s queue keeps finished jobs %s s.',
		int_fmt($ph{offered}), map({ defined $ph{$_} ? sprintf('%.0f', $ph{$_}) : '?' } qw(before_s hold_s after_s window_s)),
		defined $hz{qml}{retention_s} ? sprintf('%.0f', $hz{qml}{retention_s}) : '?') if defined $ph{offered};
	push @md, '';
	push @md, '| target | qml | verdict | raw baseline (no target) |', '|---|---:|---|---:|';
	for my $t (@targets) {
		my ($q, $v) = $cell->('qml', $t);
		my ($r) = $cell->('raw', $t);
		push @md, "| $t->[0], $t->[3] $t->[4] | $q | $v | $r |";
	}
	push @md, '';
	push @md, '| side | window end (s) | phase | claimed/s | enqueued/s | claim p50 ms | claim p99 ms | table MB | indexes MB | dead tuples | oldest snapshot (xids) | backlog |';
	push @md, '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
	for (@hzwin) {
		my ($side, $end, $phase, $got, $enq, $p50, $p99, $tb, $ib, $dead, $age, $backlog) = @$_;
		push @md, sprintf('| %s | %s | %s | %s | %s | %s | %s | %.1f | %.1f | %s | %s | %s |', $side, $end, $phase,
			int_fmt($got), int_fmt($enq), num($p50), num($p99), $tb / 1048576, $ib / 1048576, int_fmt($dead), int_fmt($age), int_fmt($backlog));
		push @jhzwin, sprintf('{"side": %s, "window_end_s": %d, "phase": %s, "claimed_per_s": %s, "enqueued_per_s": %s, "claim_p50_ms": %s, "claim_p99_ms": %s, "table_bytes": %d, "index_bytes": %d, "dead_tuples": %d, "xmin_age": %d, "backlog": %d}',
			jstr($side), $end, jstr($phase), jnum($got), jnum($enq), jnum($p50), jnum($p99), $tb, $ib, $dead, $age, $backlog);
	}
	push @md, '';
}
my $jhz = '{"summary": {' . join(', ', map { my $s = $_; jstr($s) . ': {' . join(', ', map { jstr($_) . ': ' . jnum($hz{$s}{$_}) } sort keys %{ $hz{$s} }) . '}' } sort keys %hz)
	. '}, "windows": [' . join(', ', @jhzwin) . ']}';

my @notes = grep { $_ ne '' } lines('notes.txt');
if (@notes) {
	push @md, '## Notes', '';
	push @md, map { "- $_" } @notes;
	push @md, '';
}

open(my $m, '>', "$dir/latest.md") or die "$dir/latest.md: $!\n";
print $m join("\n", @md), "\n";
close $m;

open(my $j, '>', "$dir/latest.json") or die "$dir/latest.json: $!\n";
print $j "{\n";
print $j "  ", join(",\n  ", map { jstr($_) . ': ' . jstr($meta{$_}) } @meta_order), ",\n" if @meta_order;
print $j "  \"passes\": [\n", join(",\n", @json_passes), "\n  ],\n";
print $j "  \"churn\": [", join(', ', @jchurn), "],\n";
print $j "  \"horizon\": $jhz,\n";
print $j "  \"notes\": [", join(', ', map { jstr($_) } @notes), "]\n";
print $j "}\n";
close $j;
