#!/usr/bin/perl
# bench/report.pl RESULTS_DIR: turns what bench/run.sh recorded there
# (meta.tsv, cases.tsv, runs.tsv, churn.tsv, notes.txt) into latest.md and
# latest.json. Medians, min and max per side; the ratio is qml's median over
# the baseline's. Numbers only: nothing here says pass or fail.
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
print $j "  \"notes\": [", join(', ', map { jstr($_) } @notes), "]\n";
print $j "}\n";
close $j;
