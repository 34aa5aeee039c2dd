-- case 1, qml: one job per transaction
\set p random(0, 3)
SELECT qml.enqueue('noop', '{"n":1}', 'default', :p);
