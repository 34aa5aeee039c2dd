#!/usr/bin/perl
# bench/parse-output.pl NAME < output: the numbers a program folded into the
# benchmark printed. A number, or a list of numbers (one per run), followed
# by "jobs/s" or "ms" is one measurement; its label is the rest of the line.
# When a line holds several measurements, the word just before each one
# (p50, p99, max, all, ...) is added to the label:
#     "threads 4: 12,345 jobs/s"                  -> "threads 4": 12345
#     "wakeups on: 3622 3522 jobs/s (median 3622)" -> "wakeups on": 3622, 3522
#     "wake latency: p50 0.8 ms, p99 2.1 ms"       -> "wake latency p50": 0.8 ...
# Prints KEY <tab> LABEL <tab> VALUE <tab> UNIT <tab> CONCURRENCY (the thread,
# worker or client count the label names, or empty), one line per value.
use strict;
use warnings;

my $name = shift // 'ext';
(my $prefix = lc $name) =~ s/[^a-z0-9]+/_/g;
my $num = qr/\d[\d,]*(?:\.\d+)?/;

while (my $line = <STDIN>) {
	chomp $line;
	$line =~ s/\r//g;
	my @found;
	while ($line =~ /(?:([A-Za-z][\w.%-]*)[ \t]*[:=]?[ \t]*)?((?:$num[ \t]+)*$num)[ \t]*(jobs\/s|ms)\b/g) {
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
	$base =~ s/$num\.\d*\s*[a-z\/%]*//gi;
	$base =~ s/\d[\d,]*\.\d+\s*[a-z\/%]*//gi;
	$base =~ s/\b\d[\d,]*\s*(?:s|sec|seconds|us|%)(?![\w\/])//gi;
	$base =~ s/[\s:;,=|()\[\]-]+/ /g;
	$base =~ s/^\s+|\s+$//g;
	for my $f (@found) {
		my ($pre, $list, $unit) = @$f;
		my $label = $base;
		$label .= ($label eq '' ? '' : ' ') . lc $pre if $several && defined $pre;
		$label = $unit eq 'ms' ? 'latency' : 'throughput' if $label eq '';
		my $conc = '';
		if ($label =~ /\b(\d+)\s*(?:threads?|workers?|clients?|concurrency)\b/i
			|| $label =~ /\b(?:threads?|workers?|clients?|concurrency|conc|c)\s*=?\s*(\d+)\b/i) {
			$conc = $1;
		}
		(my $key = lc "${prefix}_$label") =~ s/[^a-z0-9]+/_/g;
		$key =~ s/_+$//;
		for my $v (split /[ \t]+/, $list) {
			$v =~ s/,//g;
			print join("\t", $key, $label, $v, $unit, $conc), "\n";
		}
	}
}
