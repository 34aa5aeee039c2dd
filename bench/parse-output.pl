#!/usr/bin/perl
# bench/parse-output.pl NAME < output: the numbers a program folded into the
# benchmark printed, in two shapes.
#
# Lines: a number, or a list of numbers (one per run), followed by "jobs/s"
# or "ms" is one measurement labelled by the rest of the line. When a line
# holds several, the word just before each (p50, p99, max, all, ...) is added:
#     "threads 4: 12,345 jobs/s"                  -> "threads 4": 12345
#     "wakeups on: 3622 3522 jobs/s (median 3622)" -> "wakeups on": 3622, 3522
#     "wake latency: p50 0.8 ms, p99 2.1 ms"       -> "wake latency p50": 0.8 ...
# Tables: a header whose columns (two or more spaces apart) name a unit,
# then rows of numbers; a column named "raw ..." or "baseline ..." is the
# baseline of its row:
#     threads    qml jobs/s   raw jobs/s    ratio
#     4                3077         4715     0.65  -> "threads 4": 3077 vs 4715
# A line starting with "-- " names the section the labels after it belong to
# (until a line starting with "== ").
#
# Prints KEY, LABEL, VALUE, UNIT, CONCURRENCY (the thread, worker or client
# count the label names, or empty), SIDE (qml or base) and the baseline's
# name, separated by \x1f (so that empty fields survive the shell's read),
# one line per value.
use strict;
use warnings;

my $name = shift // 'ext';
(my $prefix = lc $name) =~ s/[^a-z0-9]+/_/g;
my $num = qr/\d[\d,]*(?:\.\d+)?/;
my $unit_re = qr/(jobs\/s|ms)/;
my $section = '';
my @header;		# columns of the table being read, if any

sub emit {
	my ($label, $value, $unit, $side, $base_label) = @_;
	$label = "$section: $label" if $section ne '';
	my $conc = '';
	if ($label =~ /\b(\d+)\s*(?:threads?|workers?|clients?|concurrency)\b/i
		|| $label =~ /\b(?:threads?|workers?|clients?|concurrency|conc|c)\s*=?\s*(\d+)\b/i) {
		$conc = $1;
	}
	(my $key = lc "${prefix}_$label") =~ s/[^a-z0-9]+/_/g;
	$key =~ s/_+$//;
	$value =~ s/,//g;
	print join("\x1f", $key, $label, $value, $unit, $conc, $side, $base_label // ''), "\n";
}

sub clean {
	my ($s) = @_;
	$s =~ s/[\s:;,=|()\[\]-]+/ /g;
	$s =~ s/^\s+|\s+$//g;
	return $s;
}

while (my $line = <STDIN>) {
	chomp $line;
	$line =~ s/\r//g;
	if ($line =~ /^\s*--+\s+(.*)$/) { $section = clean($1); @header = (); next; }
	if ($line =~ /^\s*==/) { $section = ''; @header = (); next; }

	# a row of the table whose header we saw
	if (@header) {
		(my $t = $line) =~ s/^\s+|\s+$//g;
		my @f = split /\s+/, $t;
		if (@f == @header && !grep { !/^-?$num$/ } @f[1 .. $#f]) {
			my $row = clean($header[0] eq '' ? $f[0] : "$header[0] $f[0]");
			my ($base_col) = grep { $header[$_] =~ /^(?:raw|baseline|base)\b/i && $header[$_] =~ $unit_re } 1 .. $#header;
			my $base_label = defined $base_col ? clean(($header[$base_col] =~ s/\s*\(?$unit_re\)?\s*//r)) : '';
			for my $i (1 .. $#header) {
				next unless $header[$i] =~ $unit_re;
				my $unit = $1;
				my $side = (defined $base_col && $i == $base_col) ? 'base' : 'qml';
				emit($row, $f[$i], $unit, $side, $base_label);
			}
			next;
		}
		@header = ();
	}
	# a table header: columns two or more spaces apart, one naming a unit, no numbers
	(my $t = $line) =~ s/^\s+|\s+$//g;
	my @cols = split /\s{2,}/, $t;
	if (@cols >= 2 && grep({ /(?:^|\s|\()$unit_re\)?$/ } @cols) && !grep({ /^$num$/ } @cols)
		&& $line !~ /$num\s*$unit_re/) {
		@header = @cols;
		next;
	}

	my @found;
	while ($line =~ /(?:([A-Za-z][\w.%-]*)[ \t]*[:=]?[ \t]*)?((?:$num[ \t]+)*$num)[ \t]*$unit_re\b/g) {
		push @found, [$1, $2, $3, $-[0], $+[0]];
	}
	next unless @found;
	my $several = @found > 1;
	# the label: the line without its measurements
	my $base = $line;
	for my $f (reverse @found) {
		my ($pre, undef, undef, $from, $to) = @$f;
		my $keep = (defined $pre && !$several) ? "$pre " : ' ';
		substr($base, $from, $to - $from) = $keep;
	}
	# summaries and other measurements on the line vary between runs
	$base =~ s/\b(?:median|mean|avg|average|min|max|p\d+)\s*[:=]?\s*$num\s*[a-z\/%]*//gi;
	$base =~ s/\d[\d,]*\.\d+\s*[a-z\/%]*//gi;
	$base =~ s/\b\d[\d,]*\s*(?:s|sec|seconds|us|%)(?![\w\/])//gi;
	$base = clean($base);
	for my $f (@found) {
		my ($pre, $list, $unit) = @$f;
		my $label = $base;
		$label .= ($label eq '' ? '' : ' ') . lc $pre if $several && defined $pre;
		$label = $unit eq 'ms' ? 'latency' : 'throughput' if $label eq '';
		emit($label, $_, $unit, 'qml', '') for split /[ \t]+/, $list;
	}
}
