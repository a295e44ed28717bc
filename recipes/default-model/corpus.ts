// Procedural children's-story corpus for Slipstream's default model.
//
// The default model is trained from scratch on text this script writes, so the corpus is
// license-clean by construction: nothing is downloaded and no existing text is copied. A small
// story grammar (characters, places, things, dozens of story arcs with many phrasings per beat)
// produces simple, fluent English in the style of TinyStories. Agreement is handled in code rather
// than left to templates: pronouns follow the character (and fall back to names when two
// characters share a pronoun), verbs are inflected by rule plus an irregular table, plural things
// take "were"/"them", and a final pass fixes "a"/"an" and sentence capitals.
//
//   node --import tsx recipes/default-model/corpus.ts --out corpus.jsonl --stories 60000 --seed 1

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type Rng = () => number;

/** mulberry32: tiny, fast, good enough for sampling templates; deterministic for a seed. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- words -------------------------------------------------------------------------------------

/** Vowel-initial words said with a consonant sound ("a unicorn") and the reverse ("an hour"). */
const A_BEFORE_VOWEL = new Set(['one', 'once', 'unicorn', 'unicorns', 'uniform', 'unique', 'useful', 'usual', 'ukulele', 'unicycle', 'university', 'eucalyptus', 'european', 'ewe']);
const AN_BEFORE_CONSONANT = new Set(['hour', 'hours', 'honest', 'honor', 'heir']);

export function articleFor(word: string): 'a' | 'an' {
  const w = word.toLowerCase().replace(/[^a-z].*$/, '');
  if (AN_BEFORE_CONSONANT.has(w)) return 'an';
  if (A_BEFORE_VOWEL.has(w)) return 'a';
  return /^[aeiou]/.test(w) ? 'an' : 'a';
}

const PAST: Record<string, string> = {
  be: 'was', begin: 'began', bend: 'bent', bite: 'bit', blow: 'blew', break: 'broke', bring: 'brought', build: 'built', buy: 'bought',
  catch: 'caught', come: 'came', cut: 'cut', dig: 'dug', do: 'did', draw: 'drew', drink: 'drank', eat: 'ate', fall: 'fell', feed: 'fed',
  feel: 'felt', find: 'found', fly: 'flew', forget: 'forgot', get: 'got', give: 'gave', go: 'went', grow: 'grew', hang: 'hung', have: 'had',
  hear: 'heard', hide: 'hid', hit: 'hit', hold: 'held', keep: 'kept', know: 'knew', lead: 'led', leap: 'leaped', leave: 'left', let: 'let',
  light: 'lit', lose: 'lost', make: 'made', meet: 'met', put: 'put', read: 'read', ride: 'rode', ring: 'rang', run: 'ran', say: 'said',
  see: 'saw', shake: 'shook', shine: 'shone', sing: 'sang', sink: 'sank', sit: 'sat', sleep: 'slept', slide: 'slid', speak: 'spoke',
  spend: 'spent', spin: 'spun', stand: 'stood', stick: 'stuck', sweep: 'swept', swim: 'swam', swing: 'swung', take: 'took', teach: 'taught',
  tell: 'told', think: 'thought', throw: 'threw', wake: 'woke', wear: 'wore', win: 'won', write: 'wrote',
};
/** Short verbs that double their last consonant: hop -> hopped, hopping. */
const DOUBLES = new Set(['hop', 'skip', 'clap', 'nap', 'jog', 'drum', 'hum', 'wrap', 'stop', 'plan', 'trot', 'dig', 'run', 'swim', 'sit', 'shop', 'pat', 'hug', 'tap', 'drop', 'grab', 'step', 'chop', 'rub', 'scrub', 'spin', 'win', 'get', 'begin', 'cut', 'let', 'put', 'hit', 'mop', 'zip', 'trip', 'pop', 'slip', 'nod', 'stir', 'plod', 'dab', 'bob', 'wag', 'beg']);

function pastOf(v: string): string {
  if (PAST[v] !== undefined) return PAST[v]!;
  if (DOUBLES.has(v)) return v + v[v.length - 1] + 'ed';
  if (v.endsWith('e')) return v + 'd';
  if (/[^aeiou]y$/.test(v)) return v.slice(0, -1) + 'ied';
  return v + 'ed';
}
function ingOf(v: string): string {
  if (v === 'be') return 'being';
  if (DOUBLES.has(v)) return v + v[v.length - 1] + 'ing';
  if (v.endsWith('ie')) return v.slice(0, -2) + 'ying';
  if (/[^aeioy]e$/.test(v)) return v.slice(0, -1) + 'ing';
  return v + 'ing';
}
/** An activity ("ride a bike") in its three forms; the first word is the verb. */
interface Act { base: string; past: string; ing: string }
function act(phrase: string): Act {
  const sp = phrase.indexOf(' ');
  const v = sp < 0 ? phrase : phrase.slice(0, sp);
  const rest = sp < 0 ? '' : phrase.slice(sp);
  return { base: phrase, past: pastOf(v) + rest, ing: ingOf(v) + rest };
}
export const inflect = act;

const PLURAL: Record<string, string> = {
  mouse: 'mice', sheep: 'sheep', fish: 'fish', deer: 'deer', goose: 'geese', child: 'children', person: 'people', foot: 'feet', tooth: 'teeth',
  leaf: 'leaves', wolf: 'wolves', loaf: 'loaves', shelf: 'shelves', scarf: 'scarves', hippo: 'hippos', kangaroo: 'kangaroos', tomato: 'tomatoes',
  potato: 'potatoes', piano: 'pianos', moose: 'moose', ox: 'oxen',
};
export function pluralOf(noun: string): string {
  const sp = noun.lastIndexOf(' ');
  const head = noun.slice(sp + 1);
  const pre = noun.slice(0, sp + 1);
  if (PLURAL[head] !== undefined) return pre + PLURAL[head];
  if (/(s|x|z|ch|sh)$/.test(head)) return pre + head + 'es';
  if (/[^aeiou]y$/.test(head)) return pre + head.slice(0, -1) + 'ies';
  return pre + head + 's';
}

const NUM = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

// ---- lexicon -----------------------------------------------------------------------------------

const GIRLS = ['Mia', 'Lily', 'Emma', 'Anna', 'Lucy', 'Zoe', 'Sara', 'Ella', 'Amy', 'Rosa', 'Nina', 'Maya', 'Ava', 'Chloe', 'Grace', 'Ruby', 'Sophie', 'Hannah', 'Lena', 'Ivy', 'Jade', 'Kate', 'Molly', 'Daisy', 'Poppy', 'Layla', 'Aisha', 'Priya', 'Mei', 'Yuki', 'Fatima', 'Amara', 'Sofia', 'Elena', 'Hana', 'Nora', 'Clara', 'Alice', 'Julia', 'Leah', 'Olivia', 'Isla', 'Freya', 'Tara', 'Asha', 'Leila', 'Zara', 'Iris', 'Eva', 'Luna', 'Jenny', 'Beth', 'Kim', 'Sally', 'Tina', 'Amelia', 'Mila', 'Nia', 'Kiara', 'Anya', 'Lola', 'Holly', 'Susie', 'Dora', 'Rita', 'Gemma', 'Abby', 'Heidi', 'Lisa', 'Maria'];
const BOYS = ['Tom', 'Ben', 'Sam', 'Max', 'Leo', 'Jack', 'Tim', 'Noah', 'Liam', 'Finn', 'Owen', 'Jake', 'Luke', 'Adam', 'Alex', 'Oscar', 'Theo', 'Hugo', 'Eli', 'Ryan', 'Dan', 'Joe', 'Ted', 'Ned', 'Omar', 'Ravi', 'Kenji', 'Mateo', 'Kofi', 'Ivan', 'Luis', 'Chen', 'Ali', 'Arjun', 'Sami', 'Jamal', 'Diego', 'Felix', 'Henry', 'Jamie', 'Charlie', 'Harry', 'Billy', 'Danny', 'Eddie', 'Kai', 'Milo', 'Nate', 'Pete', 'Ollie', 'Rory', 'Toby', 'Zack', 'Ethan', 'Lucas', 'Mark', 'Paul', 'Peter', 'Simon', 'Yusuf', 'Nico', 'Marco', 'Hiro', 'Jonah', 'Caleb', 'Bruno', 'Amir', 'Raj', 'Tariq', 'Wes'];
const PET_NAMES = ['Pip', 'Spot', 'Coco', 'Bubbles', 'Benny', 'Rosie', 'Poppy', 'Milo', 'Bella', 'Toby', 'Luna', 'Ollie', 'Ruby', 'Sunny', 'Penny', 'Buddy', 'Ziggy', 'Hazel', 'Pepper', 'Nutmeg', 'Biscuit', 'Peanut', 'Maple', 'Willow', 'Fern', 'Clover', 'Button', 'Patch', 'Rusty', 'Dot', 'Flash', 'Sparky', 'Fluffy', 'Snowy', 'Whiskers', 'Squeaky', 'Tiny', 'Goldie', 'Honey', 'Ginger', 'Mocha', 'Jelly', 'Pebble', 'Twig', 'Acorn', 'Berry', 'Bramble', 'Cookie', 'Puddle', 'Misty', 'Shadow', 'Bingo', 'Scout', 'Dusty', 'Olive', 'Sage', 'Tulip', 'Daisy', 'Marble', 'Noodle', 'Pickle', 'Waffle', 'Chip', 'Bean', 'Freckles', 'Socks', 'Rocky', 'Skipper', 'Dash', 'Bolt', 'Pudding', 'Sprout', 'Juniper', 'Thistle', 'Hopper', 'Nibbles', 'Lulu', 'Mimi', 'Gus', 'Otis', 'Ruff'];
const NEIGHBORS: [string, 'm' | 'f'][] = [['Mr. Brown', 'm'], ['Mrs. Green', 'f'], ['Mr. Lee', 'm'], ['Mrs. Patel', 'f'], ['Mr. Jones', 'm'], ['Mrs. Hill', 'f'], ['Mr. Gray', 'm'], ['Mrs. Rivera', 'f'], ['Mr. Wood', 'm'], ['Mrs. King', 'f'], ['Mr. Garcia', 'm'], ['Mrs. Chen', 'f'], ['Mr. Okafor', 'm'], ['Mrs. Bell', 'f'], ['Mr. Stone', 'm'], ['Mrs. Park', 'f']];

interface Species {
  n: string;
  looks: string[];
  move: string;
  home: string;
  food: string[];
  hab: string[];
  size: 'tiny' | 'small' | 'big';
  fly?: boolean;
  swim?: boolean;
  climb?: boolean;
  hero?: boolean;
  sound?: string;
}
const sp = (n: string, size: Species['size'], move: string, looks: string[], home: string, food: string[], hab: string[], extra: Partial<Species> = {}): Species => ({ n, size, move, looks, home, food, hab, hero: true, ...extra });
const SPECIES: Species[] = [
  sp('rabbit', 'small', 'hop', ['long ears', 'a fluffy white tail', 'soft gray fur'], 'a cozy burrow under an old oak tree', ['carrots', 'clover', 'lettuce'], ['meadow', 'forest', 'garden'], { sound: 'squeaked' }),
  sp('fox', 'small', 'trot', ['red fur', 'a bushy tail', 'pointy ears'], 'a den between the big rocks', ['berries', 'apples'], ['forest', 'meadow', 'hill'], { sound: 'yipped' }),
  sp('bear', 'big', 'walk', ['thick brown fur', 'big round ears', 'soft paws'], 'a warm cave in the hills', ['honey', 'berries', 'fish'], ['forest', 'hill', 'river'], { sound: 'growled', climb: true }),
  sp('mouse', 'tiny', 'scamper', ['a pink nose', 'a long thin tail', 'round ears'], 'a little hole under the roots of a tree', ['cheese', 'seeds', 'crumbs'], ['meadow', 'farm', 'garden', 'forest'], { sound: 'squeaked' }),
  sp('kitten', 'small', 'run', ['soft orange fur', 'white paws', 'green eyes'], 'a warm basket by the fire', ['milk', 'fish'], ['garden', 'farm'], { sound: 'meowed', climb: true }),
  sp('puppy', 'small', 'run', ['floppy ears', 'a waggy tail', 'brown spots'], 'a little red doghouse', ['bones', 'biscuits'], ['garden', 'park', 'farm'], { sound: 'barked' }),
  sp('duck', 'small', 'waddle', ['yellow feathers', 'an orange beak', 'webbed feet'], 'a nest in the reeds by the pond', ['bread crumbs', 'seeds'], ['pond', 'river', 'farm'], { sound: 'quacked', swim: true, fly: true }),
  sp('owl', 'small', 'fly', ['big round eyes', 'soft brown feathers'], 'a hollow in a tall tree', ['seeds', 'berries'], ['forest'], { sound: 'hooted', fly: true }),
  sp('frog', 'small', 'jump', ['smooth green skin', 'long legs', 'big eyes'], 'a lily pad in the pond', ['flies', 'bugs'], ['pond', 'river'], { sound: 'croaked', swim: true }),
  sp('turtle', 'small', 'crawl', ['a hard green shell', 'a slow smile'], 'a quiet spot by the pond', ['leaves', 'strawberries'], ['pond', 'river', 'garden', 'beach'], { swim: true }),
  sp('squirrel', 'small', 'scamper', ['a bushy tail', 'quick little paws'], 'a nest high up in a tree', ['nuts', 'acorns', 'seeds'], ['forest', 'park', 'garden'], { climb: true, sound: 'chattered' }),
  sp('hedgehog', 'tiny', 'shuffle', ['little spikes', 'a tiny black nose'], 'a pile of leaves under a bush', ['berries', 'beetles'], ['garden', 'forest', 'meadow']),
  sp('deer', 'big', 'leap', ['long thin legs', 'soft brown fur', 'big dark eyes'], 'a quiet spot deep in the woods', ['grass', 'leaves'], ['forest', 'meadow']),
  sp('elephant', 'big', 'stomp', ['a long trunk', 'big floppy ears', 'thick gray skin'], 'the grasslands near a watering hole', ['peanuts', 'leaves', 'bananas'], ['jungle', 'river'], { sound: 'trumpeted' }),
  sp('giraffe', 'big', 'walk', ['a very long neck', 'brown spots', 'long legs'], 'the grasslands under the acacia trees', ['leaves'], ['jungle']),
  sp('monkey', 'small', 'swing', ['a long curly tail', 'quick hands'], 'a tall tree in the jungle', ['bananas', 'mangoes'], ['jungle'], { climb: true, sound: 'chattered' }),
  sp('pig', 'small', 'trot', ['pink skin', 'a curly tail', 'a round nose'], 'a muddy pen on the farm', ['apples', 'corn'], ['farm'], { sound: 'oinked' }),
  sp('pony', 'big', 'trot', ['a shiny mane', 'a long tail', 'strong legs'], 'a stable on the farm', ['hay', 'apples', 'carrots'], ['farm', 'meadow'], { sound: 'neighed' }),
  sp('lamb', 'small', 'skip', ['a woolly white coat', 'little black hooves'], 'a green field on the farm', ['grass', 'clover'], ['farm', 'meadow'], { sound: 'bleated' }),
  sp('goat', 'small', 'jump', ['little horns', 'a funny beard'], 'a rocky hill near the farm', ['grass', 'leaves'], ['farm', 'hill'], { climb: true, sound: 'bleated' }),
  sp('chick', 'tiny', 'hop', ['fluffy yellow feathers', 'a tiny beak'], 'a warm coop on the farm', ['seeds', 'corn'], ['farm'], { sound: 'peeped' }),
  sp('robin', 'tiny', 'fly', ['a red chest', 'tiny wings'], 'a nest in an apple tree', ['worms', 'seeds'], ['garden', 'park', 'forest'], { fly: true, sound: 'chirped' }),
  sp('penguin', 'small', 'waddle', ['black and white feathers', 'short wings'], 'a snowy beach far in the south', ['fish'], ['beach'], { swim: true, sound: 'squawked' }),
  sp('otter', 'small', 'swim', ['sleek brown fur', 'whiskers'], 'a burrow on the river bank', ['fish', 'clams'], ['river', 'pond'], { swim: true }),
  sp('beaver', 'small', 'waddle', ['a flat tail', 'big front teeth'], 'a lodge of sticks in the river', ['leaves', 'bark'], ['river', 'pond'], { swim: true }),
  sp('raccoon', 'small', 'creep', ['a black mask around the eyes', 'a striped tail'], 'a hollow log in the woods', ['berries', 'nuts'], ['forest', 'park'], { climb: true }),
  sp('kangaroo', 'big', 'hop', ['strong back legs', 'a big pouch'], 'the wide dry plains', ['grass', 'leaves'], ['hill', 'meadow']),
  sp('koala', 'small', 'climb', ['fuzzy gray ears', 'a big black nose'], 'a eucalyptus tree', ['eucalyptus leaves'], ['forest'], { climb: true }),
  sp('panda', 'big', 'roll', ['black and white fur', 'black patches around the eyes'], 'a bamboo forest in the mountains', ['bamboo'], ['forest', 'hill'], { climb: true }),
  sp('tiger', 'big', 'prowl', ['orange fur with black stripes', 'big soft paws'], 'a shady spot in the jungle', ['fish'], ['jungle'], { sound: 'roared' }),
  sp('zebra', 'big', 'gallop', ['black and white stripes', 'a short mane'], 'the grasslands', ['grass'], ['meadow', 'jungle']),
  sp('hippo', 'big', 'wade', ['a huge mouth', 'short legs'], 'a muddy river', ['grass', 'watermelons'], ['river'], { swim: true }),
  sp('lion', 'big', 'prowl', ['a golden mane', 'big paws'], 'a rock in the sunny grasslands', ['fish'], ['jungle'], { sound: 'roared' }),
  sp('dragon', 'small', 'fly', ['shiny green scales', 'small wings', 'a long tail'], 'a cave on top of a mountain', ['berries', 'pancakes'], ['hill', 'forest'], { fly: true }),
  sp('unicorn', 'big', 'gallop', ['a shiny horn', 'a rainbow mane'], 'a meadow full of flowers', ['apples', 'clover'], ['meadow', 'forest'], {}),
  sp('dinosaur', 'big', 'stomp', ['tough green skin', 'a long tail', 'tiny arms'], 'a valley full of ferns', ['leaves', 'ferns'], ['forest', 'jungle'], { sound: 'roared' }),
  sp('ladybug', 'tiny', 'crawl', ['a red back with black spots'], 'a rose bush', ['tiny bugs'], ['garden', 'meadow'], { fly: true }),
  sp('bee', 'tiny', 'buzz', ['fuzzy yellow stripes', 'shiny wings'], 'a busy hive', ['nectar'], ['garden', 'meadow'], { fly: true, sound: 'buzzed' }),
  sp('ant', 'tiny', 'march', ['six tiny legs'], 'a big anthill', ['crumbs', 'seeds'], ['garden', 'park', 'meadow']),
  sp('snail', 'tiny', 'slide', ['a curly shell'], 'a damp spot under a leaf', ['lettuce'], ['garden'], { hero: false }),
  sp('fish', 'tiny', 'swim', ['shiny scales', 'a shimmering tail'], 'the cool blue water', ['seaweed'], ['pond', 'river', 'beach'], { swim: true, hero: false }),
  sp('crab', 'tiny', 'scuttle', ['a hard red shell', 'two big claws'], 'a rock pool by the sea', ['seaweed'], ['beach'], { hero: false, swim: true }),
  sp('seal', 'small', 'swim', ['smooth gray skin', 'long whiskers'], 'a rocky beach', ['fish'], ['beach'], { swim: true, hero: false }),
  sp('butterfly', 'tiny', 'flutter', ['bright orange wings'], 'a field of flowers', ['nectar'], ['garden', 'meadow'], { fly: true, hero: false }),
  sp('cow', 'big', 'walk', ['black and white spots'], 'a big red barn', ['grass', 'hay'], ['farm'], { sound: 'mooed', hero: false }),
  sp('hen', 'small', 'strut', ['brown feathers', 'a red comb'], 'a coop on the farm', ['corn', 'seeds'], ['farm'], { sound: 'clucked', hero: false }),
  sp('parrot', 'small', 'fly', ['bright green feathers', 'a curved beak'], 'a tall tree in the jungle', ['seeds', 'fruit'], ['jungle'], { fly: true, hero: false, sound: 'squawked' }),
  sp('goose', 'big', 'waddle', ['long white neck'], 'the edge of the lake', ['grass'], ['pond', 'farm'], { fly: true, swim: true, hero: false, sound: 'honked' }),
];
const HERO_SPECIES = SPECIES.filter((s) => s.hero !== false);
const speciesByName = (n: string): Species => SPECIES.find((s) => s.n === n)!;

interface Place {
  key: string;
  the: string;
  at: string;
  to: string;
  sights: string[];
  spots: string[];
  tags: string[];
}
const pl = (key: string, the: string, prep: string, sights: string[], spots: string[], tags: string[]): Place => ({ key, the, at: `${prep} ${the}`, to: `to ${the}`, sights, spots, tags });
const PLACES: Place[] = [
  pl('park', 'the park', 'in', ['tall green trees', 'a pond with ducks', 'a long yellow slide', 'rows of bright flowers', 'a big sandbox', 'children on the swings', 'dogs running on the grass'], ['behind a tree', 'under a bench', 'near the swings', 'in the sandbox', 'by the fountain', 'under a bush', 'in the tall grass'], ['trees', 'open', 'child', 'grass']),
  pl('beach', 'the beach', 'at', ['big blue waves', 'soft white sand', 'little crabs', 'pretty shells', 'seagulls flying high', 'boats far out on the water'], ['behind a big rock', 'in the soft sand', 'near the water', 'under a beach towel', 'in a rock pool', 'next to a sandcastle'], ['water', 'sand', 'open', 'child']),
  pl('forest', 'the forest', 'in', ['tall trees', 'green moss', 'red mushrooms', 'a little stream', 'birds in the branches', 'ferns and wild berries'], ['under a bush', 'behind a log', 'in a pile of leaves', 'near the stream', 'inside a hollow tree', 'under a big fern', 'between two rocks'], ['trees', 'child', 'animal']),
  pl('meadow', 'the meadow', 'in', ['wildflowers', 'butterflies', 'tall green grass', 'buzzing bees', 'a big old tree', 'clover and daisies'], ['in the tall grass', 'under a flower', 'behind a rock', 'near the old tree', 'in a patch of clover', 'by the stone wall'], ['open', 'grass', 'trees', 'child', 'animal']),
  pl('garden', 'the garden', 'in', ['red roses', 'tall sunflowers', 'busy bees', 'rows of carrots', 'a little pond', 'a birdbath'], ['under a big leaf', 'behind the flower pots', 'near the carrots', 'by the gate', 'under the hedge', 'in the vegetable patch', 'beside the watering can'], ['trees', 'grass', 'child', 'animal']),
  pl('farm', 'the farm', 'on', ['a big red barn', 'cows and sheep', 'piles of hay', 'a green tractor', 'hens pecking at corn', 'fields of golden wheat'], ['in the barn', 'behind the haystack', 'near the chicken coop', 'by the fence', 'under the tractor', 'in the pig pen', 'next to the water trough'], ['open', 'trees', 'child', 'animal', 'grass']),
  pl('pond', 'the pond', 'by', ['lily pads', 'green frogs', 'ducks swimming in a row', 'tall reeds', 'dragonflies', 'little fish'], ['in the reeds', 'under a lily pad', 'behind a rock', 'on the muddy bank', 'under the little bridge', 'near the willow tree'], ['water', 'trees', 'child', 'animal']),
  pl('river', 'the river', 'by', ['fast clear water', 'smooth stones', 'a wooden bridge', 'fish jumping', 'tall willow trees'], ['under the bridge', 'between the stones', 'on the river bank', 'behind a log', 'near the big willow tree'], ['water', 'trees', 'animal', 'child']),
  pl('playground', 'the playground', 'at', ['swings', 'a tall slide', 'a red seesaw', 'monkey bars', 'a merry-go-round', 'a sandbox'], ['under the slide', 'behind the seesaw', 'near the swings', 'in the sandbox', 'under the monkey bars'], ['open', 'child']),
  pl('hill', 'the big hill', 'on', ['the whole town below', 'soft green grass', 'white clouds', 'a windy sky', 'sheep far away'], ['behind a rock', 'in the long grass', 'near the top', 'under a lonely tree'], ['open', 'grass', 'trees', 'child', 'animal']),
  pl('zoo', 'the zoo', 'at', ['lions sleeping in the sun', 'tall giraffes', 'monkeys swinging', 'a big gray elephant', 'penguins diving into the water', 'colorful parrots'], ['near the monkey house', 'by the penguin pool', 'under a bench', 'next to the snack stand'], ['child']),
  pl('jungle', 'the jungle', 'in', ['tall green plants', 'bright birds', 'long vines', 'huge leaves', 'a rushing waterfall'], ['under a huge leaf', 'behind a vine', 'near the waterfall', 'inside a hollow log'], ['trees', 'animal']),
  pl('backyard', 'the backyard', 'in', ['a swing on the old tree', 'a little vegetable patch', 'a wooden fence', 'a bird feeder', 'a sandbox'], ['behind the shed', 'under the swing', 'by the fence', 'in the flower bed', 'under the old tree'], ['trees', 'grass', 'child', 'open']),
  pl('lake', 'the lake', 'by', ['sparkling water', 'a little boat', 'swans gliding by', 'a wooden dock', 'pine trees'], ['on the dock', 'under the pine trees', 'near the boat', 'behind a big rock', 'in the tall reeds'], ['water', 'trees', 'child', 'animal']),
];
const placeByKey = (k: string): Place => PLACES.find((p) => p.key === k)!;
const HOME_SPOTS = ['under the bed', 'behind the sofa', 'in the toy box', 'on the bookshelf', 'under the kitchen table', 'in the laundry basket', 'inside a boot', 'behind the curtains', 'in the closet', 'under a pillow', 'in the bathtub', 'on the windowsill', 'in the garden', 'behind the door', 'under the stairs', 'in the car', 'next to the fish tank', 'in a kitchen drawer'];

interface Thing {
  n: string;
  adj: string[];
  tags: string[];
  pl?: boolean;
}
const th = (n: string, adj: string[], tags: string[], plural = false): Thing => ({ n, adj, tags, pl: plural });
const THINGS: Thing[] = [
  th('ball', ['red', 'blue', 'bouncy', 'striped', 'big', 'yellow', 'green'], ['toy', 'lose', 'throw', 'share', 'roll']),
  th('kite', ['red', 'yellow', 'colorful', 'new', 'blue', 'diamond'], ['throw', 'share', 'wind']),
  th('teddy bear', ['brown', 'soft', 'old', 'fluffy', 'little'], ['toy', 'lose', 'hug', 'fix']),
  th('doll', ['little', 'pretty', 'rag', 'wooden'], ['toy', 'lose', 'hug', 'fix', 'share']),
  th('toy car', ['red', 'fast', 'little', 'shiny', 'blue'], ['toy', 'lose', 'share', 'fix', 'roll']),
  th('toy train', ['wooden', 'red', 'long', 'little'], ['toy', 'share', 'fix']),
  th('robot', ['silver', 'little', 'shiny', 'toy', 'blue'], ['toy', 'lose', 'share', 'fix']),
  th('hat', ['red', 'blue', 'straw', 'woolly', 'yellow', 'green'], ['lose', 'wind', 'wear']),
  th('scarf', ['red', 'warm', 'striped', 'long', 'woolly'], ['lose', 'wind', 'wear']),
  th('blanket', ['soft', 'blue', 'old', 'warm', 'patchwork'], ['lose', 'hug']),
  th('book', ['picture', 'old', 'big', 'new', 'little'], ['lose', 'share']),
  th('marble', ['shiny', 'blue', 'glass', 'green', 'swirly'], ['lose', 'roll']),
  th('shell', ['pink', 'pretty', 'shiny', 'white', 'spiral'], ['lose']),
  th('balloon', ['red', 'yellow', 'big', 'shiny', 'purple', 'orange'], ['wind', 'stuck']),
  th('frisbee', ['red', 'green', 'orange', 'blue'], ['throw', 'share']),
  th('paper plane', ['white', 'little', 'folded', 'fast'], ['throw']),
  th('toy boat', ['little', 'red', 'wooden', 'blue'], ['toy', 'share', 'lose', 'fix']),
  th('whistle', ['silver', 'little', 'shiny'], ['lose']),
  th('necklace', ['pretty', 'shiny', 'bead', 'gold'], ['lose']),
  th('umbrella', ['yellow', 'red', 'big', 'spotty', 'green'], ['lose', 'wind']),
  th('puzzle', ['big', 'new', 'animal', 'hard'], ['share']),
  th('jump rope', ['long', 'pink', 'new'], ['share']),
  th('scooter', ['shiny', 'red', 'new', 'blue'], ['share']),
  th('wagon', ['red', 'little', 'wooden'], ['share', 'fix']),
  th('stuffed bunny', ['soft', 'pink', 'floppy', 'little'], ['toy', 'lose', 'hug']),
  th('toy dinosaur', ['green', 'big', 'plastic', 'little'], ['toy', 'lose', 'share']),
  th('key', ['shiny', 'little', 'gold', 'old'], ['lose']),
  th('backpack', ['blue', 'red', 'purple', 'new'], ['lose']),
  th('lunch box', ['yellow', 'red', 'blue', 'shiny'], ['lose']),
  th('ribbon', ['pink', 'red', 'silk', 'long', 'yellow'], ['lose', 'wind']),
  th('coin', ['shiny', 'gold', 'lucky', 'silver'], ['lose']),
  th('pebble', ['smooth', 'white', 'round', 'lucky'], ['lose']),
  th('crayons', ['bright', 'new', 'colorful', 'wax'], ['share', 'lose'], true),
  th('blocks', ['wooden', 'colorful', 'big', 'red'], ['share'], true),
  th('marbles', ['shiny', 'glass', 'colorful'], ['share', 'lose'], true),
  th('mittens', ['red', 'woolly', 'warm', 'striped'], ['lose', 'wear'], true),
  th('glasses', ['round', 'old', 'brown'], ['lose'], true),
  th('drum', ['little', 'red', 'loud', 'new'], ['share', 'music']),
  th('flute', ['little', 'silver', 'wooden'], ['music', 'lose']),
  th('bucket', ['red', 'yellow', 'little', 'blue'], ['share', 'lose']),
  th('toy horse', ['wooden', 'little', 'brown'], ['toy', 'share', 'fix', 'lose']),
  th('music box', ['little', 'old', 'pretty'], ['fix', 'lose']),
  th('yo-yo', ['red', 'blue', 'shiny'], ['toy', 'lose', 'share']),
  th('spinning top', ['red', 'colorful', 'wooden'], ['toy', 'share', 'lose']),
];
const things = (tag: string): Thing[] => THINGS.filter((t) => t.tags.includes(tag));

const CHILD_ADJ = ['little', 'happy', 'curious', 'kind', 'brave', 'shy', 'clever', 'cheerful', 'playful', 'friendly', 'gentle', 'funny', 'smart', 'sweet', 'young', 'quiet', 'busy', 'lively', 'thoughtful', 'bright'];
const ANIMAL_ADJ = ['little', 'curious', 'kind', 'brave', 'shy', 'clever', 'cheerful', 'playful', 'friendly', 'gentle', 'young', 'busy', 'small', 'happy', 'quiet', 'clumsy', 'helpful', 'silly'];
const CHILD_HOBBIES = ['draw pictures', 'paint', 'sing songs', 'dance', 'read books', 'play ball', 'ride a bike', 'build towers with blocks', 'play in the garden', 'look at the stars', 'collect shells', 'climb trees', 'help in the kitchen', 'play hide and seek', 'jump in puddles', 'run fast', 'watch the birds', 'make things out of clay', 'play the drum', 'tell jokes', 'pick flowers', 'play dress-up', 'fly kites', 'swing on the swings', 'count things', 'play with toy cars', 'dig in the sand', 'make up songs', 'look for bugs', 'splash in the bath', 'play tag', 'blow bubbles', 'feed the ducks', 'ask questions', 'bake with Grandma', 'play pretend'];
const ANIMAL_HOBBIES = ['play in the sun', 'explore', 'chase butterflies', 'roll in the grass', 'look for berries', 'take long naps', 'play hide and seek', 'watch the clouds', 'listen to the birds', 'make new friends', 'collect pretty stones', 'splash in puddles', 'sing little songs', 'play tag', 'count the stars', 'dance in the rain'];
const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

// ---- characters --------------------------------------------------------------------------------

type Gender = 'm' | 'f';
interface Char {
  /** How narration names the character after the first mention: "Mia", "the owl", "Mom". */
  name: string;
  /** First mention, when it differs ("her friend Ben", "a wise old owl"). */
  first?: string;
  /** The character a first mention refers to ("her" in "her friend Ben"), so it counts as mentioned. */
  rel?: Char;
  introduced: boolean;
  g: Gender;
  kind: 'child' | 'animal' | 'adult';
  sp?: Species;
  /** What the hero calls this character in dialogue ("Mom", "Mama"); defaults to name. */
  call?: string;
  age?: number;
}
const PR = {
  m: { he: 'he', him: 'him', his: 'his', self: 'himself' },
  f: { he: 'she', him: 'her', his: 'her', self: 'herself' },
} as const;
const he = (c: Char): string => PR[c.g].he;
const him = (c: Char): string => PR[c.g].him;
const his = (c: Char): string => PR[c.g].his;
const poss = (name: string): string => name + "'s";
const boyGirl = (c: Char): string => (c.g === 'm' ? 'boy' : 'girl');
const HOOVED = new Set(['pony', 'deer', 'zebra', 'goat', 'lamb', 'unicorn', 'cow']);
const WINGED = new Set(['duck', 'owl', 'robin', 'penguin', 'chick', 'hen', 'parrot', 'goose']);
/** What a character holds things with: hand, paw, hoof, wing. */
const limb = (c: Char, plural = false): string => {
  const n = c.sp === undefined || c.kind !== 'animal' ? 'hand' : HOOVED.has(c.sp.n) ? 'hoof' : WINGED.has(c.sp.n) ? 'wing' : c.sp.size === 'tiny' ? 'leg' : 'paw';
  return plural ? (n === 'hoof' ? 'hooves' : n + 's') : n;
};
const call = (c: Char): string => c.call ?? c.name.replace(/^the /, '');
const capFirst = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** A thing as it appears in one story (adjective chosen once, so it stays the same red ball). */
class Item {
  readonly pl: boolean;
  constructor(readonly base: Thing, readonly adj: string) {
    this.pl = base.pl === true;
  }
  get n(): string {
    return this.base.n;
  }
  get full(): string {
    return `${this.adj} ${this.base.n}`;
  }
  /** "a red ball" / "some red crayons". */
  get a(): string {
    return this.pl ? `some ${this.full}` : `a ${this.full}`;
  }
  get the(): string {
    return `the ${this.base.n}`;
  }
  get it(): string {
    return this.pl ? 'them' : 'it';
  }
  get itS(): string {
    return this.pl ? 'they' : 'it';
  }
  get was(): string {
    return this.pl ? 'were' : 'was';
  }
  get is(): string {
    return this.pl ? 'are' : 'is';
  }
  get wasnt(): string {
    return this.pl ? 'were not' : 'was not';
  }
}

type Mood = 'plain' | 'happy' | 'sad' | 'scared' | 'angry' | 'kind' | 'reply' | 'excited' | 'teach' | 'shy' | 'worried';
type Thunk = () => string;

/**
 * Builds one story sentence by sentence. It remembers which characters the previous and the
 * current sentence mention, so S/O/P give a pronoun only when no other character with the same
 * pronoun is in play, and a name otherwise.
 */
class Teller {
  private paras: string[][] = [[]];
  private prev: Char[] = [];
  private cur: Char[] = [];
  constructor(readonly rng: Rng) {}

  pick = <T>(xs: readonly T[]): T => xs[Math.floor(this.rng() * xs.length)]!;
  chance = (p: number): boolean => this.rng() < p;
  int = (lo: number, hi: number): number => lo + Math.floor(this.rng() * (hi - lo + 1));
  /** Several distinct items, in random order. */
  some = <T>(xs: readonly T[], k: number): T[] => {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.slice(0, k);
  };
  /** Run one of several alternatives; lazy so only the chosen one records mentions. */
  any = (...fs: Thunk[]): string => this.pick(fs)();
  addAny = (...fs: Thunk[]): void => this.add(this.any(...fs));
  maybe = (p: number, f: () => void): void => {
    if (this.rng() < p) f();
  };

  private rival(c: Char, set: Char[]): boolean {
    return set.some((o) => o !== c && o.g === c.g);
  }
  private usePronoun(c: Char): boolean {
    if (!c.introduced) return false;
    if (this.cur.includes(c)) return !this.rival(c, this.cur);
    if (this.prev.includes(c) && !this.rival(c, this.prev) && !this.rival(c, this.cur)) return this.rng() < 0.7;
    return false;
  }
  private note(c: Char): string {
    if (!this.cur.includes(c)) this.cur.push(c);
    if (!c.introduced) {
      c.introduced = true;
      if (c.first !== undefined && c.rel !== undefined && !this.cur.includes(c.rel)) this.cur.push(c.rel);
      return c.first ?? c.name;
    }
    return c.name;
  }
  /** Subject: "she" or "Mia". */
  S = (c: Char): string => {
    const p = this.usePronoun(c);
    const n = this.note(c);
    return p ? PR[c.g].he : n;
  };
  /** Object: "her" or "Mia". */
  O = (c: Char): string => {
    const p = this.usePronoun(c);
    const n = this.note(c);
    return p ? PR[c.g].him : n;
  };
  /** Possessive: "her" or "Mia's". */
  P = (c: Char): string => {
    const p = this.usePronoun(c);
    const n = this.note(c);
    return p ? PR[c.g].his : poss(n);
  };
  /** Always the name (or the first-mention description). */
  N = (c: Char): string => this.note(c);
  /** Raw pronouns that still count as a mention (so the next sentence knows who is in play). */
  he = (c: Char): string => {
    if (!this.cur.includes(c)) this.cur.push(c);
    return PR[c.g].he;
  };
  him = (c: Char): string => {
    if (!this.cur.includes(c)) this.cur.push(c);
    return PR[c.g].him;
  };
  his = (c: Char): string => {
    if (!this.cur.includes(c)) this.cur.push(c);
    return PR[c.g].his;
  };
  /** Mark a character as mentioned without printing (for "they" covering a pair). */
  touch = (...cs: Char[]): void => {
    for (const c of cs) this.note(c);
  };

  add = (s: string): void => {
    // A template that ends in a quotation still appends its own full stop: `said, "Hi!".`
    let out = s.trim().replace(/\s+/g, ' ').replace(/([.!?]")\./g, '$1');
    // Capitalise the first letter (after an opening quote too) and after sentence ends inside
    // the string that are not followed by a closing quote (`"Help!" she cried` stays lower-case).
    out = out.replace(/^("?)([a-z])/, (_m, q: string, ch: string) => q + ch.toUpperCase());
    out = out.replace(/([.!?] )([a-z])/g, (_m, p: string, ch: string) => p + ch.toUpperCase());
    out = out.replace(/([.!?] ")([a-z])/g, (_m, p: string, ch: string) => p + ch.toUpperCase());
    this.paras[this.paras.length - 1]!.push(out);
    this.prev = this.cur;
    this.cur = [];
  };
  para = (): void => {
    if (this.paras[this.paras.length - 1]!.length > 0) this.paras.push([]);
  };

  /** A line of dialogue with a tag in one of several shapes. `line` ends in . ! or ? */
  say = (c: Char, line: string, mood: Mood = 'plain'): void => {
    const end = line[line.length - 1]!;
    const pron = this.usePronoun(c);
    const who = pron ? PR[c.g].he : this.note(c);
    this.note(c);
    const tag = this.tagVerb(end, mood);
    const body = end === '.' ? line.slice(0, -1) + ',' : line;
    const r = this.rng();
    if (r < 0.45) {
      // "Line," said Mia. / "Line," she said.
      const inverted = !pron && !tag.includes(' ') && this.rng() < 0.5;
      this.add(`"${body}" ${inverted ? `${tag} ${who}` : `${who} ${tag}`}${this.adverb(mood, tag)}.`);
    } else if (r < 0.75) {
      // Mia said, "Line."
      this.add(`${who} ${tag}${this.adverb(mood, tag)}, "${line}"`);
    } else {
      // Mia smiled. "Line."
      this.add(`${who} ${this.beat(c, mood)}.`);
      this.add(`"${line}"`);
    }
  };
  private tagVerb(end: string, mood: Mood): string {
    if (end === '?') return this.pick(['asked', 'asked', 'asked', mood === 'worried' || mood === 'scared' ? 'whispered' : 'asked']);
    if (end === '!') {
      const m: Record<string, string[]> = { happy: ['cheered', 'shouted', 'laughed'], excited: ['shouted', 'cried', 'called out', 'exclaimed'], scared: ['cried', 'gasped', 'shouted'], angry: ['shouted', 'yelled'], sad: ['cried', 'sobbed'] };
      return this.pick(m[mood] ?? ['shouted', 'cried', 'called', 'said']);
    }
    const m: Record<string, string[]> = { reply: ['said', 'replied', 'answered'], scared: ['whispered', 'said'], shy: ['whispered', 'said'], sad: ['said', 'sniffed'], teach: ['said', 'explained'], happy: ['said', 'laughed'], kind: ['said', 'said'] };
    return this.pick(m[mood] ?? ['said']);
  }
  private adverb(mood: Mood, tag: string): string {
    if (tag !== 'said' && tag !== 'asked') return '';
    if (this.rng() < 0.55) return '';
    const m: Record<string, string[]> = {
      happy: [' happily', ' with a smile', ' with a big smile'],
      sad: [' sadly', ' quietly', ' in a small voice'],
      scared: [' in a shaky voice', ' softly'],
      worried: [' in a worried voice', ' quietly'],
      angry: [' crossly', ' with a frown'],
      kind: [' kindly', ' gently', ' with a warm smile'],
      teach: [' kindly', ' gently'],
      shy: [' shyly', ' quietly'],
      excited: [' excitedly'],
    };
    const xs = m[mood];
    return xs ? this.pick(xs) : '';
  }
  private beat(c: Char, mood: Mood): string {
    const m: Record<string, string[]> = {
      happy: ['smiled', 'grinned', 'laughed'],
      excited: ['jumped up and down', 'smiled from ear to ear'],
      sad: ['looked down', 'sighed', 'sniffed'],
      worried: ['frowned', 'bit ' + his(c) + ' lip'],
      scared: ['shivered', 'held ' + his(c) + ' breath'],
      angry: ['frowned', 'crossed ' + his(c) + ' arms'],
      kind: ['smiled kindly', 'smiled warmly', 'nodded kindly'],
      teach: ['smiled', 'nodded slowly'],
      reply: ['nodded', 'thought for a moment'],
      shy: ['looked down at ' + his(c) + ' feet', 'gave a small smile'],
      plain: ['nodded', 'looked up', 'thought for a moment'],
    };
    let xs = m[mood] ?? m['plain']!;
    if (c.kind === 'animal') xs = xs.filter((x) => !x.includes('arms') && !x.includes('lip'));
    return this.pick(xs.length > 0 ? xs : ['nodded']);
  }

  text(): string {
    return this.paras
      .filter((p) => p.length > 0)
      .map((p) => p.join(' '))
      .join('\n\n');
  }
}

// ---- story context and shared beats ------------------------------------------------------------

const TOWNS = ['a little town by the sea', 'a small village near the woods', 'a busy city', 'a quiet town with a big park', 'a village in the hills', 'a small town by a river', 'a farmhouse near a big green field', 'a cozy house at the end of a long street', 'a sunny town with many gardens', 'a tall building in the middle of the city'];
const CHILD_HOMES = ['a little yellow house', 'a small house with a red door', 'a tall apartment building', 'a cozy cottage near the woods', 'a farmhouse with a big barn', 'a blue house with a big garden', 'a house next to the park', 'a white house on a hill', 'a little flat above a bakery'];
const CHILD_LOOKS = ['curly brown hair', 'bright blue eyes', 'a big smile', 'freckles on {his} nose', 'long black hair', 'a gap in {his} front teeth', 'short curly hair', 'rosy cheeks', 'round glasses', 'red rubber boots', 'a funny laugh', 'dark brown eyes', 'a yellow raincoat'];

type Weather = 'any' | 'sunny' | 'windy' | 'rainy' | 'snowy' | 'night' | 'warm';
const WHEN: Record<Weather, string[]> = {
  any: ['One day', 'One day', 'One morning', 'One afternoon', 'One fine day', 'Early one morning', 'One Saturday', 'One bright morning', 'One day after lunch', 'Later that week', 'One spring morning', 'One autumn afternoon'],
  sunny: ['One sunny day', 'One sunny morning', 'One bright and sunny afternoon', 'One warm summer day', 'On a hot summer morning'],
  windy: ['One windy day', 'One breezy afternoon', 'One windy autumn morning', 'On a blustery day'],
  rainy: ['One rainy day', 'One gray and rainy morning', 'One wet afternoon', 'On a rainy Sunday'],
  snowy: ['One cold winter morning', 'One snowy day', 'One frosty morning', 'On the first day of winter'],
  night: ['One night', 'One evening', 'Late one night', 'One starry night'],
  warm: ['One warm day', 'One summer afternoon', 'On a warm spring day', 'One sunny afternoon'],
};
const WEATHER_LINE: Record<Weather, string[]> = {
  any: ['The sky was blue and the birds were singing.', 'The sun was shining.', 'It was a lovely day.', 'There was not a cloud in the sky.'],
  sunny: ['The sun was warm and bright.', 'The sky was blue and the birds were singing.', 'It was a perfect day to play outside.'],
  windy: ['The wind was blowing hard.', 'The trees swayed in the strong wind.', 'Leaves were dancing in the air.'],
  rainy: ['Rain tapped on the windows.', 'Big drops of rain fell from the gray sky.', 'It rained and rained.'],
  snowy: ['Soft white snow covered the ground.', 'Everything outside was white and quiet.', 'Snowflakes floated down from the sky.'],
  night: ['The moon was big and round.', 'The stars were twinkling in the sky.', 'Everything was dark and quiet.'],
  warm: ['The air was warm and sweet.', 'The sun was shining and the flowers were in bloom.'],
};

interface St {
  t: Teller;
  h: Char;
  place: Place;
  parent: Char;
  names: Set<string>;
}

function freshName(t: Teller, names: Set<string>, pool: string[]): string {
  for (let i = 0; i < 20; i++) {
    const n = t.pick(pool);
    if (!names.has(n)) {
      names.add(n);
      return n;
    }
  }
  const n = pool.find((x) => !names.has(x))!;
  names.add(n);
  return n;
}

function makeHero(t: Teller, names: Set<string>, kind: 'child' | 'animal'): Char {
  const g: Gender = t.chance(0.5) ? 'm' : 'f';
  if (kind === 'child') return { name: freshName(t, names, g === 'm' ? BOYS : GIRLS), introduced: true, g, kind, age: t.int(3, 8) };
  const species = t.pick(HERO_SPECIES);
  return { name: freshName(t, names, PET_NAMES), introduced: true, g, kind, sp: species };
}

function makeParent(t: Teller, h: Char): Char {
  const r = t.rng();
  if (h.kind === 'animal') {
    const sn = capFirst(h.sp!.n);
    if (r < 0.55) return { name: `Mama ${sn}`, introduced: true, g: 'f', kind: 'adult', call: 'Mama', sp: h.sp };
    if (r < 0.85) return { name: `Papa ${sn}`, introduced: true, g: 'm', kind: 'adult', call: 'Papa', sp: h.sp };
    return { name: `Grandma ${sn}`, introduced: true, g: 'f', kind: 'adult', call: 'Grandma', sp: h.sp };
  }
  if (r < 0.45) return { name: 'Mom', introduced: true, g: 'f', kind: 'adult' };
  if (r < 0.8) return { name: 'Dad', introduced: true, g: 'm', kind: 'adult' };
  if (r < 0.9) return { name: 'Grandma', introduced: true, g: 'f', kind: 'adult' };
  return { name: 'Grandpa', introduced: true, g: 'm', kind: 'adult' };
}

function placeFor(t: Teller, h: Char, tag?: string): Place {
  let c = h.kind === 'child' ? PLACES.filter((p) => p.tags.includes('child')) : PLACES.filter((p) => h.sp!.hab.includes(p.key));
  if (tag !== undefined) c = c.filter((p) => p.tags.includes(tag));
  if (c.length === 0) c = PLACES.filter((p) => p.tags.includes(h.kind) && (tag === undefined || p.tags.includes(tag)));
  if (c.length === 0) c = PLACES.filter((p) => tag === undefined || p.tags.includes(tag));
  return t.pick(c);
}

/**
 * A friend for the hero. 'known': an existing friend or relative ("her friend Ben"); 'new': a
 * stranger ("a shy boy named Ben", "a wise old owl"). Friends of animals are other animals.
 */
function makeFriend(s: St, mode: 'known' | 'new', want?: 'child' | 'animal', noFamily = false): Char {
  const { t, h } = s;
  const kind = want ?? (h.kind === 'child' ? 'child' : 'animal');
  const g: Gender = t.chance(0.5) ? 'm' : 'f';
  if (kind === 'child') {
    const name = freshName(t, s.names, g === 'm' ? BOYS : GIRLS);
    const adj = t.pick(['shy', 'little', 'new', 'quiet', 'friendly', 'smiling', 'tall']);
    const rels = ['friend', 'friend', 'friend', 'best friend', 'best friend', 'neighbor', 'cousin', 'classmate'];
    if (!noFamily) rels.push(g === 'm' ? 'big brother' : 'big sister', g === 'm' ? 'little brother' : 'little sister');
    const rel = t.pick(rels);
    const first = mode === 'new' ? `a ${adj} ${g === 'm' ? 'boy' : 'girl'} named ${name}` : `${his(h)} ${rel} ${name}`;
    return { name, first, introduced: false, g, kind: 'child', rel: h };
  }
  const others = SPECIES.filter((x) => x !== h.sp && x.hero !== false && (h.kind !== 'animal' || x.hab.some((k) => h.sp!.hab.includes(k))));
  const species = t.pick(others.length > 0 ? others : HERO_SPECIES);
  // Nameless animals ("a wise old owl") only as strangers, who are never addressed by name.
  if (mode === 'new' && want === 'animal' && t.chance(0.4)) {
    const adj = t.pick(species.n === 'owl' || species.n === 'turtle' ? ['wise old', 'kind old'] : ['friendly', 'kind', 'little', 'young', 'cheerful', 'gentle']);
    return { name: `the ${species.n}`, first: `a ${adj} ${species.n}`, introduced: false, g, kind: 'animal', sp: species };
  }
  const name = freshName(t, s.names, PET_NAMES);
  const first = mode === 'new' ? `a ${t.pick(['shy', 'little', 'young', 'friendly'])} ${species.n} named ${name}` : t.pick([`${his(h)} friend ${name} the ${species.n}`, `${name} the ${species.n}`, `${his(h)} friend ${name} the ${species.n}`]);
  return { name, first, introduced: false, g, kind: 'animal', sp: species, rel: h };
}

/** A sentence that introduces a friend, for arcs that first mention them in an awkward spot. */
function introduceFriend(s: St, f: Char): void {
  const { t, h } = s;
  if (f.name.startsWith('the ')) t.add(`${t.N(h)} had a good friend, ${f.first}.`);
  else t.add(`${t.N(h)} had a ${t.pick(['good', 'best', 'dear', 'special'])} friend named ${f.name}${f.sp !== undefined ? `, who was a ${f.sp.n}` : ''}.`);
  t.touch(f);
  f.introduced = true;
}

function makePet(s: St): Char {
  const { t } = s;
  const species = speciesByName(t.pick(['puppy', 'puppy', 'kitten']));
  const word = species.n === 'puppy' ? t.pick(['dog', 'puppy']) : t.pick(['cat', 'kitten']);
  const name = freshName(t, s.names, PET_NAMES);
  return { name, first: `${his(s.h)} ${word}, ${name},`, introduced: false, g: t.chance(0.5) ? 'm' : 'f', kind: 'animal', sp: species, rel: s.h };
}

function makeItem(t: Teller, tag: string, exclude?: Thing): Item {
  const base = t.pick(things(tag).filter((x) => x !== exclude));
  return new Item(base, t.pick(base.adj));
}

const when = (t: Teller, w: Weather = 'any'): string => t.pick(w === 'any' ? [...WHEN.any, ...WHEN.sunny] : WHEN[w]);
const weatherLine = (t: Teller, w: Weather = 'any'): string => t.pick(WEATHER_LINE[w]);

/** Opening: who the hero is, plus one or two details that the first sentence did not give. */
function intro(s: St): void {
  const { t, h } = s;
  const adj = t.pick(h.kind === 'child' ? CHILD_ADJ : ANIMAL_ADJ);
  type Opening = { text: string; covers: string[] };
  let open: Opening;
  const extras: Record<string, Thunk> = {};
  if (h.kind === 'child') {
    const kid = boyGirl(h);
    const home = t.pick(CHILD_HOMES);
    const age = NUM[h.age!]!;
    open = t.pick<Opening>([
      { text: `Once upon a time, there was a ${adj} ${kid} named ${h.name}.`, covers: [] },
      { text: `Once upon a time, there was a ${adj} ${kid} named ${h.name}.`, covers: [] },
      { text: `There once was a ${adj} ${kid} called ${h.name}.`, covers: [] },
      { text: `${h.name} was a ${adj} ${kid} who lived in ${home}.`, covers: ['home'] },
      { text: `In ${t.pick(TOWNS)}, there lived a ${adj} ${kid} named ${h.name}.`, covers: ['home'] },
      { text: `${h.name} was a ${age}-year-old ${kid}.`, covers: ['age'] },
      { text: `Not long ago, there was a ${kid} named ${h.name}.`, covers: [] },
      { text: `${h.name} was ${age} years old, and ${he(h)} was a very ${adj === 'little' || adj === 'young' ? 'happy' : adj} ${kid}.`, covers: ['age'] },
      { text: `This is a story about a ${adj} ${kid} named ${h.name}.`, covers: [] },
    ]);
    const hobby = act(t.pick(CHILD_HOBBIES).replace('Grandma', s.parent.name === 'Grandpa' ? 'Grandpa' : 'Grandma'));
    const look = t.pick(CHILD_LOOKS).replace('{his}', his(h));
    extras['age'] = () => `${t.S(h)} was ${age} years old.`;
    extras['home'] = () => t.any(() => `${t.S(h)} lived with ${his(h)} family in ${home}.`, () => `${t.S(h)} lived with ${his(h)} ${t.pick(['family', 'big family', s.parent.name === 'Mom' || s.parent.name === 'Dad' ? 'mom and dad' : s.parent.name.toLowerCase()])} in ${home}.`);
    extras['look'] = () => t.any(() => `${t.S(h)} had ${look}.`, () => `${t.S(h)} had ${look} and a kind heart.`);
    extras['hobby'] = () =>
      t.any(
        () => `${t.S(h)} loved to ${hobby.base}.`,
        () => `More than anything, ${t.S(h)} liked ${hobby.ing}.`,
        () => `${capFirst(his(h))} favorite thing to do was to ${hobby.base}.`,
        () => `What ${he(h)} liked best was ${hobby.ing}.`,
        () => `${t.S(h)} liked to ${hobby.base} every day.`,
      );
  } else {
    const spc = h.sp!;
    const look = t.pick(spc.looks);
    open = t.pick<Opening>([
      { text: `Once upon a time, there was a ${adj} ${spc.n} named ${h.name}.`, covers: [] },
      { text: `${h.name} was a ${adj} ${spc.n} with ${look}.`, covers: ['look'] },
      { text: `${capFirst(s.place.at)}, there lived a ${adj} ${spc.n} called ${h.name}.`, covers: [] },
      { text: `${h.name} the ${spc.n} lived in ${spc.home}.`, covers: ['home'] },
      { text: `There once was a ${adj} ${spc.n}. ${capFirst(his(h))} name was ${h.name}.`, covers: [] },
      { text: `Far away, ${s.place.at}, lived a ${adj} ${spc.n} named ${h.name}.`, covers: [] },
      { text: `This is a story about a ${adj} ${spc.n} named ${h.name}.`, covers: [] },
    ]);
    const hobby = act(t.pick(spc.fly ? [...ANIMAL_HOBBIES, 'fly high above the trees'] : spc.swim ? [...ANIMAL_HOBBIES, 'swim and splash'] : ANIMAL_HOBBIES));
    extras['home'] = () => `${t.S(h)} lived in ${spc.home}.`;
    extras['look'] = () => `${t.S(h)} had ${t.pick(spc.looks.filter((x) => x !== look).concat(spc.looks.length > 1 ? [] : [look]))}.`;
    extras['food'] = () => `${capFirst(his(h))} favorite food was ${t.pick(spc.food)}.`;
    extras['hobby'] = () =>
      t.any(
        () => `${t.S(h)} loved to ${hobby.base}.`,
        () => `Every day, ${t.S(h)} liked to ${act(spc.move).base} around ${s.place.the} and ${hobby.base}.`,
        () => `More than anything, ${t.S(h)} liked ${hobby.ing}.`,
      );
  }
  t.add(open.text);
  t.touch(h);
  const keys = Object.keys(extras).filter((k) => !open.covers.includes(k));
  const chosen = t.some(keys, t.chance(0.45) ? 2 : 1);
  for (const k of keys) if (chosen.includes(k)) t.add(extras[k]!());
}

const SAD = (t: Teller, c: Char): string =>
  t.any(
    () => `${t.S(c)} felt very sad.`,
    () => `${t.S(c)} was so sad that ${he(c)} wanted to cry.`,
    () => `A big tear rolled down ${t.P(c)} cheek.`,
    () => `${t.S(c)} sat down and sighed.`,
    () => `${t.S(c)} felt sad and a little bit worried.`,
    () => `${t.P(c)} eyes filled with tears.`,
    () => (c.sp?.sound !== undefined ? `${t.S(c)} ${c.sp.sound} sadly.` : `${t.S(c)} felt like crying.`),
  );
const HAPPY = (t: Teller, c: Char): string =>
  t.any(
    () => `${t.S(c)} was so happy!`,
    () => `${t.S(c)} jumped for joy.`,
    () => `${t.P(c)} face lit up with a big smile.`,
    () => `${t.S(c)} felt warm and happy inside.`,
    () => `${t.S(c)} could not stop smiling.`,
    () => `${t.S(c)} laughed with joy.`,
    () => (c.sp?.sound !== undefined ? `${t.S(c)} ${c.sp.sound} with joy.` : `${t.S(c)} smiled a big smile.`),
  );

type LessonKey = 'practice' | 'gentle' | 'friendship' | 'sharing' | 'tryAgain' | 'brave' | 'honest' | 'patience' | 'kind' | 'askHelp' | 'teamwork' | 'careful' | 'yourself' | 'sorry' | 'listen' | 'thanks' | 'friends' | 'fun';
const LESSONS: Record<LessonKey, { that: string[]; res: ((c: Char) => string)[]; line: string[] }> = {
  sharing: {
    that: ['sharing makes everyone happy', 'it is more fun to play together', 'good friends share what they have', 'sharing is a way of being kind'],
    res: [(c) => `always shared ${his(c)} toys with ${his(c)} friends`, () => 'was happy to share', () => 'never forgot how good it felt to share'],
    line: ['When we share, everyone has more fun.', 'Sharing is caring.', 'Things are more fun when we share them.'],
  },
  tryAgain: {
    that: ['it is good to keep trying', 'you should never give up', 'things often work out if you keep going'],
    res: [() => 'never gave up when something was hard', () => 'kept trying, even when things were hard'],
    line: ['If at first you do not succeed, try, try again.', 'Every time you try, you get a little better.', 'Never give up, and you will get there.'],
  },
  brave: {
    that: ['being brave does not mean you are never scared', 'many things are not as scary as they seem', 'you can be brave even when you feel scared', 'it helps to talk about your fears'],
    res: [() => 'was not so scared anymore', (c) => `remembered how brave ${he(c)} could be`, () => 'felt a little braver every day'],
    line: ['Being brave means doing something even when you are scared.', 'You are braver than you think.', 'Fears get smaller when you face them.'],
  },
  honest: {
    that: ['it is always best to tell the truth', 'telling the truth is the right thing to do', 'the truth makes a heavy heart feel light'],
    res: [() => 'always told the truth', () => 'told the truth, even when it was hard'],
    line: ['Thank you for telling the truth.', 'Telling the truth is always the right thing to do.', 'I am proud of you for being honest.'],
  },
  patience: {
    that: ['good things take time', 'waiting can be hard, but it is worth it', 'it is good to be patient'],
    res: [() => 'knew how to wait for good things', () => 'was a little more patient'],
    line: ['Good things come to those who wait.', 'Some things take time, and that is okay.'],
  },
  kind: {
    that: ['a little kindness can make a big difference', 'helping others feels good', 'it is good to be kind to everyone', 'kindness always comes back to you'],
    res: [(c) => `helped others whenever ${he(c)} could`, () => 'was always kind to everyone', () => 'looked for ways to help'],
    line: ['Being kind is the best thing you can do.', 'A kind heart is a happy heart.', 'When you help others, you help yourself too.'],
  },
  askHelp: {
    that: ['it is okay to ask for help', 'friends are there to help', 'some jobs are easier with a friend'],
    res: [() => 'was never afraid to ask for help', (c) => `knew that ${his(c)} friends would help`],
    line: ['It is always okay to ask for help.', 'That is what friends are for.'],
  },
  teamwork: {
    that: ['working together makes hard jobs easy', 'two friends are better than one', 'everyone can help in their own way'],
    res: [() => 'liked to work together with friends', () => 'knew that teamwork makes everything easier'],
    line: ['We can do anything if we work together.', 'Teamwork makes hard things easy.'],
  },
  careful: {
    that: ['it is important to take care of your things', 'it is good to put things back where they belong', 'being careful saves a lot of trouble'],
    res: [(c) => `always put ${his(c)} things back where they belong`, () => 'was much more careful'],
    line: ['If you take care of your things, they will last a long time.', 'A place for everything, and everything in its place.'],
  },
  yourself: {
    that: ['everyone is special in their own way', 'it is best to be yourself', 'being different can be a good thing'],
    res: [(c) => `was proud to be ${him(c)}self`, () => 'never wished to be someone else again'],
    line: ['You are perfect just the way you are.', 'Everyone is good at something different.'],
  },
  sorry: {
    that: ['saying sorry can fix a lot of things', 'good friends forgive each other', 'it is better to talk than to stay angry'],
    res: [() => 'was quick to say sorry', () => 'remembered that a friend matters more than being right'],
    line: ['A good friend says sorry and means it.', 'Friends forgive each other.'],
  },
  listen: {
    that: ['it is important to listen to grown-ups', 'it is safer to stay close', 'rules are there to keep us safe'],
    res: [() => 'always listened carefully', () => 'stayed close to the grown-ups'],
    line: ['Always stay where I can see you.', 'We make rules to keep you safe.'],
  },
  thanks: {
    that: ['gifts from the heart are the best gifts', 'it is important to say thank you', 'the best presents are made with love'],
    res: [() => 'never forgot to say thank you', () => 'loved making presents for the people around'],
    line: ['A gift made with love is the best gift of all.', 'It is the thought that counts.'],
  },
  friends: {
    that: ['a new friend can be found anywhere', 'saying hello is the first step to making a friend', 'friends make everything more fun'],
    res: [() => 'always said hello to new faces', () => 'was never lonely again'],
    line: ['A friend is the best thing you can have.', 'It is easy to make a friend if you are kind.'],
  },
  practice: {
    that: ['practice makes hard things easy', 'mistakes help us learn', 'everyone has to learn one step at a time', 'it is good to keep trying'],
    res: [() => 'never gave up when something was hard', () => 'knew that practice would help', () => 'was not afraid to make mistakes'],
    line: ['If at first you do not succeed, try, try again.', 'Every time you try, you get a little better.', 'Never give up, and you will get there.'],
  },
  gentle: {
    that: ['toys last longer when you are gentle with them', 'broken things can often be fixed with a little help and a lot of care', 'it is important to take care of the things you love'],
    res: [(c) => `took good care of ${his(c)} toys`, (c) => `was gentle with all of ${his(c)} things`],
    line: ['With a little care, things can last a long time.', 'Almost anything can be fixed with patience.'],
  },
  friendship: {
    that: ['friends make everything more fun', 'good friends are there for each other', 'a true friend cares about you', 'friends make hard days better'],
    res: [(c) => `was always there for ${his(c)} friends`, () => 'took good care of every friend'],
    line: ['That is what friends are for.', 'A good friend is worth more than gold.'],
  },
  fun: {
    that: ['you can have fun anywhere', 'a change of plans can still be fun', 'it is good to make the best of things'],
    res: [() => 'knew that every day can be a good day', () => 'always found a way to have fun'],
    line: ['There is always something fun to do.', 'A rainy day can be a happy day too.'],
  },
};

/** Close with a lesson, told by the narrator or by a grown-up. */
function lesson(s: St, key: LessonKey, sage?: Char): void {
  const { t, h } = s;
  const L = LESSONS[key];
  const that = t.pick(L.that);
  const forms: Thunk[] = [
    () => `${t.N(h)} learned that ${that}.`,
    () => `That day, ${t.N(h)} learned an important lesson: ${that}.`,
    () => `From that day on, ${t.N(h)} ${t.pick(L.res)(h)}.`,
    () => `Now ${t.N(h)} knew that ${that}.`,
    () => `${t.N(h)} learned that ${that}. From then on, ${he(h)} ${t.pick(L.res)(h)}.`,
  ];
  if (sage !== undefined && t.chance(0.4)) {
    t.say(sage, t.pick(L.line), 'teach');
    t.maybe(0.5, () => t.addAny(() => `${t.S(h)} nodded.`, () => `${t.S(h)} smiled and nodded.`, () => `${t.N(h)} never forgot those words.`));
  } else t.addAny(...forms);
}

function endPair(s: St, f: Char): void {
  const { t, h } = s;
  t.addAny(
    () => `${t.N(h)} and ${t.N(f)} played together until the sun went down.`,
    () => `From then on, ${t.N(h)} and ${t.N(f)} were the best of friends.`,
    () => `${t.N(h)} and ${t.N(f)} laughed and laughed. It was the best day ever.`,
    () => `That evening, ${t.N(h)} and ${t.N(f)} sat together and watched the sunset.`,
    () => `${t.N(h)} and ${t.N(f)} smiled at each other. It had been a wonderful day.`,
    () => `They spent the rest of the day playing and laughing together.`,
  );
}
function endSolo(s: St): void {
  const { t, h } = s;
  t.addAny(
    () => `That night, ${t.N(h)} went to sleep with a big smile.`,
    () => `${t.N(h)} felt happy all day long.`,
    () => `It was the best day ${t.N(h)} had ever had.`,
    () => `${t.N(h)} smiled all the way home.`,
    () => `And ${t.N(h)} was happy for a long, long time.`,
    () => `When ${t.N(h)} went to bed that night, ${he(h)} was still smiling.`,
  );
}


// ---- story arcs --------------------------------------------------------------------------------

interface Arc {
  name: string;
  kinds: ('child' | 'animal')[];
  /** Force the hero's species (the dragon story needs a dragon). */
  species?: string;
  run: (s: St) => void;
}

/** A favourite thing goes missing; a friend helps find it. */
function arcLost(s: St): void {
  const { t, h } = s;
  const { S, N, O, P, say, add, addAny, pick, maybe, para, he, his } = t;
  const it = makeItem(t, 'lose');
  const f = makeFriend(s, 'known');
  const my = `my ${it.n}`;
  intro(s);
  addAny(
    () => `${S(h)} had ${it.a} that ${he(h)} loved very much.`,
    () => `${P(h)} favorite ${it.pl ? 'things' : 'thing'} in the whole world ${it.was} ${his(h)} ${it.full}.`,
    () => `${S(h)} had ${it.a}, and ${he(h)} took ${it.it} everywhere.`,
    () => `${S(h)} loved ${his(h)} ${it.full} more than anything.`,
  );
  maybe(0.5, () =>
    addAny(
      () => `${capFirst(it.itS)} ${it.was} a present from ${his(h)} ${pick(['grandma', 'grandpa', 'aunt', 'uncle'])}.`,
      () => `Every night, ${S(h)} put ${it.it} right next to ${his(h)} bed.`,
      () => `${S(h)} said that ${it.the} ${it.was} lucky.`,
    ),
  );
  para();
  addAny(
    () => `${when(t)}, ${S(h)} wanted to play with ${his(h)} ${it.n}. But ${it.the} ${it.was} not in ${it.pl ? 'their' : 'its'} usual place.`,
    () => `${when(t)}, ${S(h)} went to get ${his(h)} ${it.n}. ${capFirst(it.the)} ${it.was} gone!`,
    () => `${when(t)}, something bad happened. ${N(h)} could not find ${his(h)} ${it.n} anywhere.`,
    () => `${when(t)}, ${S(h)} looked for ${his(h)} ${it.n}, but ${it.itS} ${it.was} nowhere to be found.`,
  );
  const atHome = h.kind === 'child' && t.chance(0.6);
  const spots = t.some(atHome ? HOME_SPOTS : s.place.spots, 3);
  addAny(
    () => `${S(h)} looked ${spots[0]}, but ${it.itS} ${it.wasnt} there.`,
    () => `First, ${S(h)} looked ${spots[0]}. There was nothing there.`,
    () => `${S(h)} ran to look ${spots[0]}, but ${it.itS} ${it.wasnt} there.`,
  );
  addAny(
    () => `Then ${S(h)} looked ${spots[1]}. ${capFirst(it.itS)} ${it.wasnt} there either.`,
    () => `${S(h)} searched ${spots[1]} too, but ${he(h)} could not find ${it.it}.`,
    () => `Next, ${S(h)} checked ${spots[1]}. Still no ${it.n}!`,
  );
  add(SAD(t, h));
  maybe(0.6, () => say(h, pick([`Where ${it.pl ? 'are' : 'is'} ${my}?`, `Oh no! I lost ${my}!`, `I will never find ${my}!`]), 'sad'));
  para();
  addAny(
    () => `Just then, ${N(f)} came by.`,
    () => `Soon, ${N(f)} came over to see what was wrong.`,
    () => `After a while, ${N(f)} found ${O(h)} sitting alone.`,
  );
  say(f, pick(['What is wrong?', `Why are you sad, ${h.name}?`, 'What happened?', 'Are you okay?']), 'kind');
  say(h, pick([`I can't find ${my}.`, `I lost ${my}. I looked everywhere!`, `${capFirst(my)} ${it.is} gone.`]), 'sad');
  say(f, pick(["Don't worry. I will help you look.", "Let's look together!", 'I am good at finding things. I will help you.', 'Two sets of eyes are better than one. Come on!']), 'kind');
  const found = t.rng();
  if (found < 0.35) {
    addAny(
      () => `So they looked ${spots[2]}.`,
      () => `Together, they searched ${spots[2]}.`,
    );
    addAny(
      () => `And there it was! ${capFirst(it.the)} ${it.was} right there.`.replace('there it was', it.pl ? 'there they were' : 'there it was'),
      () => `${S(f)} saw something ${it.adj}. It was ${P(h)} ${it.n}!`,
    );
  } else if (found < 0.65) {
    addAny(
      () => `${S(f)} thought for a moment.`,
      () => `${S(f)} asked where ${N(h)} had played last.`,
    );
    add(`Suddenly, ${N(h)} remembered. ${capFirst(he(h))} had left ${it.it} ${spots[2]} the day before!`);
    add(`They ran to look, and there ${it.pl ? 'they were' : 'it was'}.`);
  } else if (atHome) {
    const pet = makePet(s);
    add(`They looked everywhere. Then they saw ${N(pet)} curled up in ${pick(['the corner', 'a sunny spot', 'a basket', 'the hall'])}.`);
    add(`${capFirst(pick(['the little rascal', pet.name]))} was sleeping on ${it.the}!`);
    maybe(0.6, () => add(`${N(h)} and ${N(f)} laughed and laughed.`));
  } else {
    add(`They looked high and low. At last, ${N(f)} found ${it.the} ${spots[2]}.`);
  }
  para();
  add(HAPPY(t, h));
  addAny(
    () => `${S(h)} held ${his(h)} ${it.n} tight.`,
    () => `${S(h)} picked up ${his(h)} ${it.n} and gave ${N(f)} a big hug.`,
  );
  say(h, pick([`Thank you, ${call(f)}! You are a good friend.`, `Thank you for helping me, ${call(f)}!`, 'Thank you so much!']), 'happy');
  lesson(s, pick<LessonKey>(['careful', 'askHelp', 'careful']));
}

/** A thrown or flown thing gets stuck up high; a friend helps get it down. */
function arcStuck(s: St): void {
  const { t, h } = s;
  const { S, N, O, P, say, add, addAny, pick, maybe, para, chance, he, his } = t;
  const it = new Item(t.pick([...things('throw'), ...things('stuck')].filter((x) => !x.pl)), '');
  const item = new Item(it.base, pick(it.base.adj));
  const kite = item.n === 'kite';
  const balloon = item.n === 'balloon';
  const f = makeFriend(s, 'known');
  const high = pick(['in the branches of a tall tree', 'high up in an old oak tree', 'on the roof of the shed', 'on top of a tall fence', 'at the very top of a tree']);
  intro(s);
  para();
  const w: Weather = kite || balloon ? 'windy' : 'sunny';
  addAny(
    () => `${when(t, w)}, ${S(h)} went ${s.place.to} with ${his(h)} ${item.full}.`,
    () => `${when(t, w)}, ${S(h)} took ${his(h)} new ${item.n} ${s.place.to}.`,
  );
  maybe(0.5, () => add(weatherLine(t, w)));
  if (kite) add(`The ${item.adj} kite flew high in the sky. It danced and dipped in the wind.`);
  else if (balloon) add(`${S(h)} held the string tight as the ${item.full} bobbed in the air.`);
  else addAny(
    () => `${S(h)} threw the ${item.n} up high and ran to catch it.`,
    () => `${S(h)} threw the ${item.n} again and again. It flew higher every time.`,
  );
  add(
    kite
      ? `Then a big gust of wind came. The kite pulled and pulled, and the string slipped out of ${P(h)} ${limb(h, true)}.`
      : balloon
        ? `Suddenly, a gust of wind pulled the string out of ${P(h)} ${limb(h)}.`
        : `But then ${S(h)} threw it too hard.`,
  );
  add(`The ${item.n} flew up, up, up, and got stuck ${high}.`);
  say(h, pick([`Oh no! My ${item.n}!`, `Come back, ${item.n}!`, `My ${item.n} is stuck!`]), 'scared');
  para();
  addAny(
    () => `${S(h)} jumped as high as ${he(h)} could, but ${he(h)} could not reach it.`,
    () => `${S(h)} stood on ${his(h)} tiptoes and stretched, but it was much too high.`,
    () => `${S(h)} tried to jump, and then ${he(h)} tried to climb, but the ${item.n} was too high.`,
  );
  add(SAD(t, h));
  addAny(
    () => `Just then, ${N(f)} came along.`,
    () => `Soon, ${N(f)} walked by and saw ${O(h)}.`,
  );
  say(f, pick(['What is the matter?', 'Why do you look so sad?', 'What happened?']), 'kind');
  say(h, pick([`My ${item.n} is stuck up there, and I can't reach it.`, kite || balloon ? `The wind took my ${item.n}. Now it is stuck.` : `I threw my ${item.n} too high. Now it is stuck.`]), 'sad');
  const fsp = f.sp;
  const r = t.rng();
  if (fsp !== undefined && (fsp.fly === true || fsp.n === 'giraffe' || fsp.climb === true)) {
    const how = fsp.fly ? 'flew up' : fsp.n === 'giraffe' ? 'stretched out a very long neck' : 'climbed up the tree';
    say(f, 'I can help with that!', 'happy');
    add(`${S(f)} ${how} and gently pulled the ${item.n} free.`);
  } else if (r < 0.5) {
    say(f, pick([f.kind === 'child' ? 'I know! You can climb on my shoulders.' : 'I know! You can climb on my back.', 'If we work together, we can reach it.', 'I have an idea!']), 'excited');
    add(`${S(f)} ${pick(['bent down', 'knelt down', 'stood very still'])}, and ${N(h)} climbed onto ${P(f)} ${f.kind === 'child' ? 'shoulders' : 'back'}.`);
    add(`${S(h)} stretched up as far as ${he(h)} could. At last, ${he(h)} grabbed the ${item.n}!`);
  } else {
    say(f, pick(['Let\'s find a long stick!', 'We need something long to reach it.']), 'excited');
    add(`They looked around and found a long ${pick(['stick', 'branch', 'pole'])}.`);
    add(`${N(f)} held ${P(h)} ${limb(h)} while ${N(h)} stood on a rock and reached up with the stick. ${chance(0.5) ? 'Poke, poke, poke!' : 'Tap, tap!'} The ${item.n} fell right into the grass.`);
  }
  para();
  add(HAPPY(t, h));
  say(h, pick([`Thank you, ${call(f)}!`, `You saved my ${item.n}, ${call(f)}!`, `Thank you! I could not have done it alone.`]), 'happy');
  maybe(0.6, () =>
    addAny(
      () => `Then ${N(h)} and ${N(f)} played with the ${item.n} together, ${kite ? 'holding the string very tight' : 'far away from the trees'}.`,
      () => `After that, ${N(h)} let ${N(f)} have a turn with the ${item.n}.`,
    ),
  );
  lesson(s, pick<LessonKey>(['askHelp', 'teamwork']));
}

interface Fear {
  what: string;
  why: string;
  when: Weather;
  comfort: string;
  try: (s: St) => string;
  after: string;
  kinds: ('child' | 'animal')[];
}
const FEARS: Fear[] = [
  { what: 'the dark', why: 'At night, the shadows in {his} room looked like monsters.', when: 'night', comfort: 'The dark is just your room with the lights turned off. Everything is still the same.', try: (s) => `${s.t.S(s.h)} took a deep breath and looked around the dark room. The big monster was only a pile of clothes on a chair!`, after: 'laughed and snuggled into bed', kinds: ['child', 'animal'] },
  { what: 'thunder', why: 'When the sky rumbled, {he} hid under the blanket.', when: 'rainy', comfort: 'Thunder is just the sound the clouds make. It is loud, but it cannot hurt you.', try: (s) => `The next time the thunder boomed, ${s.t.S(s.h)} counted, "One, two, three," and the sound rolled far away.`, after: 'was not scared anymore', kinds: ['child', 'animal'] },
  { what: 'deep water', why: 'The water looked so big and deep that {he} stayed on the sand.', when: 'sunny', comfort: 'We will start where it is not deep. I will hold you the whole time.', try: (s) => `${s.t.S(s.h)} stepped into the water, one little step at a time. It was cool and nice. Soon ${he(s.h)} was kicking and splashing.`, after: 'splashed and laughed', kinds: ['child', 'animal'] },
  { what: 'the big slide', why: 'It was so tall that {he} always used the small one.', when: 'sunny', comfort: 'Go slowly up the ladder, and hold on tight. I will wait for you at the bottom.', try: (s) => `${s.t.S(s.h)} climbed the ladder step by step. At the top, ${he(s.h)} sat down and let go. Whoosh! Down ${he(s.h)} went!`, after: 'ran back to the ladder to go again', kinds: ['child'] },
  { what: 'the big dog next door', why: 'The dog barked loudly every time {he} walked by.', when: 'any', comfort: 'He barks because he wants to say hello. He is a very friendly dog.', try: (s) => `${s.t.S(s.h)} held out ${his(s.h)} hand very slowly. The big dog sniffed it and then licked it. Then he wagged his tail!`, after: 'giggled and patted the dog', kinds: ['child'] },
  { what: 'the first day of school', why: 'There would be new faces, new rooms, and no {parent} to hold {his} hand.', when: 'any', comfort: 'Everyone feels a little scared on the first day. You will make friends, you will see.', try: (s) => `${s.t.S(s.h)} walked into the classroom. A ${s.t.chance(0.5) ? 'girl' : 'boy'} with a big smile waved and said, "Do you want to sit with me?"`, after: 'could not wait to go back the next day', kinds: ['child'] },
  { what: 'the doctor', why: 'Last time, the doctor had given {him} a shot, and it hurt.', when: 'any', comfort: 'The doctor helps you stay healthy. You can squeeze my hand if you feel scared.', try: (s) => `The doctor was kind and funny. She listened to ${s.t.P(s.h)} heart and let ${him(s.h)} listen too. Thump, thump, thump!`, after: 'got a sticker for being brave', kinds: ['child'] },
  { what: 'the dark woods', why: 'The trees were so tall and the woods were so quiet that {he} never went in alone.', when: 'any', comfort: 'The woods are full of friends. Listen, and you will hear them.', try: (s) => `${s.t.S(s.h)} walked into the woods very slowly. A bird sang, a squirrel waved, and the sun made little spots of light on the ground.`, after: 'went back the next day to play', kinds: ['animal'] },
  { what: 'flying', why: 'The ground looked so far away that {his} wings shook.', when: 'sunny', comfort: 'Your wings are strong. Just flap them and trust the wind.', try: (s) => `${s.t.S(s.h)} stood at the edge of the nest, closed ${his(s.h)} eyes, and jumped. ${capFirst(he(s.h))} flapped and flapped, and then ${he(s.h)} was flying!`, after: 'flew around the tree three times', kinds: ['animal'] },
  { what: 'the vacuum cleaner', why: 'It roared like a hungry monster and {he} always ran away from it.', when: 'any', comfort: 'It is only a machine that eats dust. Do you want to push the button?', try: (s) => `${s.t.S(s.h)} pushed the button. The vacuum hummed. Then ${he(s.h)} turned it off again. It was not a monster at all!`, after: 'even helped to clean the floor', kinds: ['child'] },
];

/** Afraid of something; a grown-up or friend helps; the hero faces it. */
function arcFear(s: St): void {
  const { t, h } = s;
  const { S, N, P, say, add, addAny, pick, para, he, him, his } = t;
  const fears = FEARS.filter((x) => x.kinds.includes(h.kind as 'child' | 'animal') && (x.what !== 'flying' || h.sp?.fly === true) && (x.what !== 'deep water' || h.sp?.swim !== true));
  const fear = pick(fears);
  const p = s.parent;
  intro(s);
  addAny(
    () => `But ${S(h)} was afraid of ${fear.what}.`,
    () => `${S(h)} was brave about most things, but ${he(h)} was scared of ${fear.what}.`,
    () => `There was just one thing that ${N(h)} did not like: ${fear.what}.`,
  );
  add(fear.why.replace(/\{he\}/g, he(h)).replace(/\{his\}/g, his(h)).replace(/\{him\}/g, him(h)).replace(/\{parent\}/g, call(p)));
  para();
  add(`${when(t, fear.when)}, ${N(h)} had to face ${fear.what}.`);
  addAny(
    () => `${P(h)} ${h.kind === 'child' ? 'knees' : 'legs'} began to shake.`,
    () => `${S(h)} felt ${his(h)} heart beat fast.`,
    () => `${S(h)} wanted to run and hide.`,
  );
  say(h, pick([`I'm scared, ${call(p)}.`, `${call(p)}, I don't want to.`, `What if something bad happens?`]), 'scared');
  addAny(
    () => `${N(p)} ${pick(['gave', 'gave'])} ${N(h)} a big hug.`,
    () => `${N(p)} sat down next to ${N(h)}.`,
  );
  say(p, fear.comfort + (t.chance(0.5) ? ' ' + pick(['You are braver than you think.', 'I know you can do it.', 'I am right here with you.']) : ''), 'kind');
  para();
  add(fear.try(s));
  say(h, pick(['That was not so scary after all!', 'I did it! I was brave!', `Look, ${call(p)}! I'm not scared anymore!`]), 'excited');
  addAny(
    () => `${N(h)} ${fear.after}.`,
    () => `${S(h)} smiled and ${fear.after}.`,
  );
  addAny(
    () => `${N(p)} was very proud.`,
    () => `${N(p)} clapped and smiled.`,
  );
  lesson(s, 'brave', p);
}

/** Won't share; it's lonely; says sorry and shares. */
function arcShare(s: St): void {
  const { t, h } = s;
  const { S, N, O, P, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const treat = t.chance(0.3);
  const food = pick(['cookies', 'cherries', 'grapes', 'strawberries', 'muffins', 'cupcakes', 'crackers', 'blueberries']);
  const it = makeItem(t, 'share');
  const thing = treat ? `a big bag of ${food}` : it.a;
  const f = makeFriend(s, 'known');
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(h)} got ${thing}.`,
    () => `${when(t)}, ${s.parent.name} gave ${N(h)} ${thing}.`,
  );
  if (treat) add(`The ${food} were sweet and ${pick(['delicious', 'fresh', 'yummy'])}.`);
  else add(`${capFirst(it.itS)} ${it.was} the ${pick(['best', 'nicest', 'most wonderful'])} ${it.pl ? 'things' : 'thing'} ${N(h)} had ever seen.`);
  addAny(
    () => `${S(h)} took ${treat ? 'the bag' : it.it} ${s.place.to}.`,
    () => `${S(h)} went ${s.place.to} to ${treat ? 'eat them' : `play with ${it.it}`}.`,
  );
  add(`There, ${he(h)} saw ${N(f)}.`);
  say(f, treat ? `Those ${food} look yummy! Can I have one?` : `Wow! Can I play with your ${it.n} too?`, 'excited');
  addAny(
    () => `But ${N(h)} held ${treat ? 'the bag' : it.it} close.`,
    () => `${N(h)} did not want to share.`,
  );
  say(h, treat ? `No! They are mine!` : `No! ${it.pl ? 'They are' : 'It is'} mine!`, 'angry');
  addAny(
    () => `${N(f)} looked sad and walked away.`,
    () => `${N(f)} put ${his(f)} head down and went to sit alone.`,
  );
  para();
  addAny(
    () => `${N(h)} ${treat ? `ate the ${food} by ${him(h)}self` : `played with the ${it.n} all by ${him(h)}self`}.`,
    () => `${N(h)} sat alone with ${treat ? 'the bag' : it.the}.`,
  );
  addAny(
    () => `But it was not much fun.`,
    () => `But soon ${he(h)} did not feel happy at all.`,
    () => `But something did not feel right.`,
  );
  addAny(
    () => `${S(h)} looked over at ${N(f)}, who was sitting all alone.`,
    () => `${S(h)} thought about ${P(f)} sad face.`,
  );
  add(`${capFirst(pick([`${h.name} felt a little sick inside`, `${h.name} felt bad`, `${h.name}'s tummy felt funny`]))}.`);
  maybe(0.5, () => add(`${capFirst(he(h))} remembered what ${s.parent.name} always said: "${pick(LESSONS.sharing.line)}"`));
  para();
  add(`${N(h)} ${pick(['walked', 'ran', 'went'])} over to ${N(f)}.`);
  say(h, pick([`I'm sorry, ${f.name}. Do you want to ${treat ? 'share with me' : 'play together'}?`, `I'm sorry I was mean. ${treat ? `Here, have some ${food}.` : `Let's take turns!`}`]), 'shy');
  say(f, pick(['Yes, please!', 'Thank you!', 'I would love to!']), 'happy');
  addAny(
    () => treat ? `They sat on the grass and ate the ${food} together.` : `They took turns with the ${it.n}, and they laughed and laughed.`,
    () => treat ? `${N(h)} gave ${O(f)} half of the ${food}. They tasted even better now.` : `They played with the ${it.n} together. It was much more fun than playing alone.`,
  );
  lesson(s, 'sharing');
}

interface Build {
  what: string;
  place: string;
  made: string;
  ruin: string;
  better: string;
  kinds: ('child' | 'animal')[];
}
const BUILDS: Build[] = [
  { what: 'a sandcastle', place: 'beach', made: 'It had four towers and a deep moat all around.', ruin: 'Then a big wave rolled up the beach. Whoosh! The sandcastle was gone.', better: 'This time, they built it far away from the water, and they made a wall to keep the waves out.', kinds: ['child', 'animal'] },
  { what: 'a tall tower of blocks', place: 'home', made: 'It was taller than the kitchen table!', ruin: 'Then the cat jumped up to look. Crash! The blocks fell all over the floor.', better: 'This time, they put the big blocks at the bottom, so the tower was strong.', kinds: ['child'] },
  { what: 'a snowman', place: 'backyard', made: 'It had a carrot nose, two stone eyes, and an old hat.', ruin: 'But the next day, the sun came out. The snowman began to melt, and soon he was just a little pile of snow.', better: 'This time, they built the snowman in the shade, where the sun could not reach him.', kinds: ['child', 'animal'] },
  { what: 'a fort of pillows', place: 'home', made: 'It had a blanket roof and a secret door.', ruin: 'Then the dog ran right through it. Flop! The pillows fell down.', better: 'This time, they used chairs to hold up the roof.', kinds: ['child'] },
  { what: 'a little house of sticks', place: 'forest', made: 'It had a door and a tiny window.', ruin: 'Then the wind blew hard. The sticks rolled away in every direction.', better: 'This time, they tied the sticks together with long grass and put stones around the bottom.', kinds: ['animal', 'child'] },
  { what: 'a dam of mud and stones', place: 'river', made: 'The water made a little pool behind it.', ruin: 'But the water pushed and pushed, and the dam broke.', better: 'This time, they used bigger stones and packed the mud down hard.', kinds: ['animal', 'child'] },
  { what: 'a bird house', place: 'backyard', made: 'It had a round door and a red roof.', ruin: 'But when they hung it up, the nail was too small. The bird house fell down and the roof came off.', better: 'This time, they used a strong string and hung it on a big branch.', kinds: ['child'] },
  { what: 'a tower of stones', place: 'meadow', made: 'It was as tall as a flower.', ruin: 'Then a big beetle bumped into it. The stones tumbled down.', better: 'This time, they used flat stones, and the tower stood straight and tall.', kinds: ['animal'] },
];

/** Builds something, it gets ruined, builds it again with a friend. */
function arcBuild(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, para, he } = t;
  const b = pick(BUILDS.filter((x) => x.kinds.includes(h.kind as 'child' | 'animal')));
  const f = makeFriend(s, 'known');
  const where = b.place === 'home' ? (h.kind === 'child' ? 'in the living room' : 'at home') : placeByKey(b.place).at;
  intro(s);
  para();
  addAny(
    () => `${when(t, b.what === 'a snowman' ? 'snowy' : 'any')}, ${S(h)} decided to build ${b.what} ${where}.`,
    () => `${when(t, b.what === 'a snowman' ? 'snowy' : 'any')}, ${S(h)} wanted to make the best ${b.what.replace(/^an? /, '')} ever.`,
  );
  addAny(
    () => `${S(h)} worked all ${pick(['morning', 'afternoon', 'day'])}.`,
    () => `${S(h)} worked very hard.`,
  );
  add(b.made);
  say(h, pick(['It is perfect!', 'Look what I made!', 'This is the best one ever!']), 'happy');
  add(b.ruin);
  say(h, pick(['Oh no!', 'No, no, no!', 'All my work is gone!']), 'sad');
  add(SAD(t, h));
  addAny(
    () => `${S(h)} wanted to give up.`,
    () => `${S(h)} kicked at the ground and said ${he(h)} would never build anything again.`,
  );
  para();
  add(`Then ${N(f)} came by.`);
  say(f, pick(["Don't be sad. Let's build it again, together!", 'We can make an even better one. I will help you.', 'I saw what happened. Can I help you build a new one?']), 'kind');
  add(`${N(h)} ${pick(['wiped away a tear', 'looked up', 'thought about it'])} and nodded.`);
  add(b.better);
  addAny(
    () => `${N(f)} ${pick(['found', 'brought'])} everything they needed, and ${N(h)} ${pick(['did the careful parts', 'put it all together'])}.`,
    () => `They worked side by side, and the work went fast.`,
  );
  addAny(
    () => `When they were done, it was even better than before.`,
    () => `By the end of the day, it was finished, and it was bigger and stronger than the first one.`,
    () => `At last, they stepped back to look. It was the best one yet.`,
  );
  say(f, pick(['We did it!', 'It looks great!', 'Now that is a good one!']), 'excited');
  addAny(
    () => `${N(h)} smiled from ear to ear.`,
    () => `${N(h)} and ${N(f)} gave each other a high five.`,
  );
  lesson(s, pick<LessonKey>(['tryAgain', 'teamwork']));
}

interface Critter {
  sp: string;
  problem: string;
  care: string;
  end: string;
}
const CRITTERS: Critter[] = [
  { sp: 'bird', problem: 'a little bird with a hurt wing', care: 'They made a soft bed in a box and gave the bird water and seeds.', end: 'After a few days, the bird flapped its wings and flew up into the sky. It sang a happy song as it went.' },
  { sp: 'kitten', problem: 'a tiny kitten crying under a bush', care: 'They gave the kitten some warm milk and wrapped it in a towel.', end: 'The next day, a girl down the street came looking for her lost kitten. She was so happy that she cried.' },
  { sp: 'duckling', problem: 'a baby duck that had lost its mother', care: 'They walked along the water, looking for the other ducks. The duckling followed them, peeping all the way.', end: 'At last they saw the mother duck. The duckling swam to her as fast as it could.' },
  { sp: 'turtle', problem: 'a turtle stuck on its back', care: 'Very gently, they turned the turtle over and carried it to the grass near the pond.', end: 'The turtle blinked, stretched out its neck, and walked slowly into the water.' },
  { sp: 'butterfly', problem: 'a butterfly caught in a puddle', care: 'They lifted it out on a leaf and let it sit in the sun until its wings were dry.', end: 'After a while, the butterfly opened its wings and fluttered away over the flowers.' },
  { sp: 'hedgehog', problem: 'a hedgehog with its nose stuck in a cup', care: 'Slowly and carefully, they pulled the cup off its nose.', end: 'The hedgehog sniffed the air, then shuffled off into the bushes.' },
  { sp: 'puppy', problem: 'a lost puppy with a blue collar', care: 'They read the name on the collar and gave the puppy some water.', end: 'They walked the puppy to the house on the collar. A little boy opened the door and hugged his puppy tight.' },
  { sp: 'bee', problem: 'a tired bee that could not fly', care: 'They put a drop of sugar water on a spoon, and the bee drank it up.', end: 'Soon the bee buzzed its wings and zoomed off to find more flowers.' },
];

/** Finds a hurt or lost animal and helps it. */
function arcRescue(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, him } = t;
  const c = pick(CRITTERS);
  const p = s.parent;
  s.place = placeByKey(pick(c.sp === 'duckling' ? ['pond', 'lake', 'river'] : ['park', 'garden', 'forest', 'meadow', 'backyard', 'farm']));
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${S(h)} was playing ${s.place.at} when ${he(h)} heard a soft little sound.`,
    () => `${when(t)}, ${S(h)} went for a walk ${s.place.at}.`,
  );
  add(`${capFirst(pick(['there', 'suddenly, there', 'right in front of ' + him(h) + ', there']))} was ${c.problem}.`);
  say(h, pick(['Oh, you poor thing!', 'Are you okay, little one?', 'Don\'t be scared. I will help you.']), 'kind');
  addAny(
    () => `${S(h)} ran to get ${N(p)}.`,
    () => `${S(h)} called for ${N(p)} to come and see.`,
  );
  say(p, pick(['We must be very gentle.', 'Let\'s help it together.', 'Good job for finding it. Let\'s take care of it.']), 'kind');
  para();
  add(c.care);
  maybe(0.6, () =>
    addAny(
      () => `${N(h)} stayed close and talked to it in a quiet voice.`,
      () => `${N(h)} was very careful and very patient.`,
      () => `${N(h)} named it ${pick(PET_NAMES.filter((n) => !s.names.has(n)))}.`,
    ),
  );
  add(c.end);
  para();
  add(HAPPY(t, h));
  say(h, pick([`Goodbye, little ${c.sp}!`, `I'm glad you are okay now!`, `Be careful, little ${c.sp}!`]), 'happy');
  maybe(0.5, () => say(p, pick(['You did a very kind thing today.', 'I am proud of you.']), 'kind'));
  lesson(s, 'kind');
}

interface Skill {
  what: string;
  fail: string[];
  tip: string;
  win: string;
  kinds: ('child' | 'animal')[];
  need?: keyof Species;
}
const SKILLS: Skill[] = [
  { what: 'ride a bike', fail: ['The bike wobbled, and {he} fell over.', 'The bike went left, then right, and then crash!'], tip: 'Look straight ahead, not at your feet, and keep pedaling.', win: '{He} pedaled all the way to the end of the street without falling once!', kinds: ['child'] },
  { what: 'tie {his} shoes', fail: ['The laces turned into a big knot.', 'The bow fell apart every time.'], tip: 'Make two bunny ears, cross them over, and pull them tight.', win: 'Two bunny ears, over and through, and pull. {He} had tied a perfect bow!', kinds: ['child'] },
  { what: 'swim', fail: ['{He} kicked and splashed, but {he} sank down.', 'The water went up {his} nose.'], tip: 'Kick your legs, move your arms, and blow bubbles when your face is in the water.', win: '{He} kicked and pulled and swam all the way across the pool!', kinds: ['child'] },
  { what: 'whistle', fail: ['Only air came out.', 'It sounded like a tiny wind, not a whistle.'], tip: 'Make your lips round, like a little O, and blow very softly.', win: 'Then a clear little sound came out. Tweet! {He} was whistling!', kinds: ['child'] },
  { what: 'jump rope', fail: ['The rope hit {his} feet.', 'The rope got tangled around {his} legs.'], tip: 'Jump just a little bit, right when the rope comes down.', win: 'One, two, three, four, five! {He} jumped ten times in a row!', kinds: ['child'] },
  { what: 'read a whole book', fail: ['The big words were too hard.', '{He} got stuck on the very first page.'], tip: 'Say each sound slowly, and then put the sounds together.', win: '{He} read every page, all the way to the very last one!', kinds: ['child'] },
  { what: 'fly', fail: ['{He} flapped and flapped, but {he} landed in a bush.', '{He} flew a little, then fell down in the grass.'], tip: 'Spread your wings wide and let the wind lift you up.', win: '{He} flapped {his} wings and rose up above the trees!', kinds: ['animal'], need: 'fly' },
  { what: 'swim', fail: ['{He} paddled and paddled, but {he} went around in a circle.', 'The water splashed in {his} face, and {he} ran back to the shore.'], tip: 'Kick your feet slowly and keep your head up high.', win: '{He} paddled all the way across the water!', kinds: ['animal'], need: 'swim' },
  { what: 'climb the tallest tree', fail: ['{He} slipped and slid down to the bottom.', '{He} got halfway up and then got scared.'], tip: 'Hold on tight and only look up, never down.', win: '{He} climbed to the very top and looked out over the whole forest!', kinds: ['animal'], need: 'climb' },
  { what: 'jump over the stream', fail: ['{He} jumped, but {he} landed with a splash in the water.', '{He} stopped right at the edge.'], tip: 'Run fast and jump at the very last moment.', win: '{He} ran, jumped, and landed on the other side!', kinds: ['animal'] },
  { what: 'catch a ball', fail: ['The ball bounced off {his} nose.', 'The ball went right past {him}.'], tip: 'Keep your eyes on the ball the whole time.', win: 'The ball flew through the air, and {he} caught it!', kinds: ['child', 'animal'] },
  { what: 'skate', fail: ['{His} feet went in two different ways.', '{He} fell down on the cold ice.'], tip: 'Bend your knees a little and take small steps.', win: '{He} glided across the ice like a bird!', kinds: ['child'] },
];

/** Learns a skill by trying again and again. */
function arcSkill(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const sk = pick(SKILLS.filter((x) => x.kinds.includes(h.kind as 'child' | 'animal') && (x.need === undefined || h.sp?.[x.need] === true)));
  const fill = (x: string): string => x.replace(/\{He\}/g, capFirst(he(h))).replace(/\{he\}/g, he(h)).replace(/\{His\}/g, capFirst(his(h))).replace(/\{his\}/g, his(h)).replace(/\{him\}/g, him(h));
  const what = fill(sk.what);
  const helper = t.chance(0.5) ? s.parent : makeFriend(s, 'known');
  intro(s);
  addAny(
    () => `${S(h)} wanted to learn how to ${what}.`,
    () => `${N(h)} wished very much that ${he(h)} could ${what}.`,
    () => `All of ${his(h)} friends could ${what}, but ${N(h)} could not.`,
  );
  para();
  add(`${when(t)}, ${N(h)} decided to try.`);
  const [f1, f2] = t.some(sk.fail, 2);
  add(`${S(h)} tried once. ${fill(f1!)}`);
  add(`${S(h)} tried again. ${fill(f2 ?? f1!)}`);
  say(h, pick(['I will never learn!', "I can't do it!", 'This is too hard!']), 'sad');
  addAny(
    () => `${S(h)} sat down and folded ${his(h)} arms.`.replace('folded ' + his(h) + ' arms', h.kind === 'child' ? `folded ${his(h)} arms` : 'sighed'),
    () => SAD(t, h),
  );
  para();
  add(`${N(helper)} ${pick(['came and sat next to', 'walked over to', 'saw'])} ${N(h)}.`);
  say(helper, `${pick(['Everyone finds it hard at first.', "Don't give up. You are learning.", 'Nobody can do it on the first try.', 'Here is a trick.'])} ${sk.tip}`, 'teach');
  addAny(
    () => `So ${N(h)} practiced every day.`,
    () => `${N(h)} tried again, and again, and again.`,
    () => `The next day, ${N(h)} practiced. And the day after that, ${he(h)} practiced some more.`,
  );
  maybe(0.5, () => add(`Each time, ${he(h)} got a little bit better.`));
  add(`Then, ${pick(['one morning', 'one afternoon', 'at last', 'on the ' + pick(['fifth', 'sixth', 'seventh']) + ' day'])}, ${N(h)} tried one more time.`);
  add(fill(sk.win));
  say(h, pick(['I did it! I really did it!', 'Look at me!', 'I can do it now!']), 'excited');
  addAny(
    () => `${N(helper)} cheered and clapped.`,
    () => `${N(helper)} gave ${N(h)} a big hug.`,
  );
  add(`${N(h)} felt ${pick(['so proud', 'proud and happy', 'as tall as a tree'])}.`);
  lesson(s, 'practice', helper);
}

const INDOOR_FUN = [
  { what: 'build a fort out of blankets and chairs', detail: 'They crawled inside with a flashlight and told stories.' },
  { what: 'bake cookies', detail: 'They mixed the flour, sugar, and eggs in a big bowl. Soon the whole house smelled sweet.' },
  { what: 'paint pictures', detail: 'They painted suns and flowers and big blue skies, to make up for the gray day.' },
  { what: 'do a puzzle', detail: 'It had a hundred pieces, and at the end it made a picture of a sunny beach.' },
  { what: 'put on a puppet show', detail: 'They made puppets out of old socks, with buttons for eyes.' },
  { what: 'have an indoor picnic', detail: 'They spread a blanket on the floor and ate sandwiches and grapes.' },
  { what: 'make a band', detail: 'They used pots for drums and spoons for sticks. Bang, bang, clang!' },
  { what: 'play hide and seek', detail: 'There were so many good hiding spots, like behind the curtains and under the stairs.' },
];

/** Outdoor plans ruined by rain; indoor fun instead; a rainbow. */
function arcRainy(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const p = s.parent;
  const plan = pick(['go to the park', 'have a picnic', 'play ball outside', 'go to the beach', 'ride bikes', 'play in the garden', 'visit the zoo']);
  const fun = pick(INDOOR_FUN);
  intro(s);
  para();
  addAny(
    () => `${when(t, 'rainy').replace(/^On a rainy Sunday/, 'On Sunday')}, ${N(h)} woke up early. Today ${he(h)} was going to ${plan}!`,
    () => `${N(h)} had been waiting all week to ${plan}.`,
  );
  add(`But when ${he(h)} looked out of the window, ${pick(['it was raining', 'rain was pouring down', 'dark clouds filled the sky and rain was falling'])}.`);
  maybe(0.5, () => add(weatherLine(t, 'rainy')));
  say(h, pick([`Oh no! Now we can't ${plan}.`, 'Rain, rain, go away!', 'This is the worst day ever.']), 'sad');
  add(SAD(t, h));
  para();
  add(`${N(p)} ${pick(['came in', 'sat down next to ' + him(h), 'smiled'])}.`);
  say(p, `${pick(['Rainy days can be fun too.', 'I have an idea.', 'We can still have a good day.'])} Why don't we ${fun.what}?`, 'kind');
  addAny(
    () => `${N(h)} was not sure, but ${he(h)} said yes.`,
    () => `${N(h)} wiped ${his(h)} eyes and nodded.`,
  );
  add(fun.detail.replace(/^They/, `${N(h)} and ${N(p)}`).replace(/^It /, 'The puzzle '));
  addAny(
    () => `${N(h)} laughed so much that ${he(h)} forgot all about the rain.`,
    () => `Soon ${N(h)} was having so much fun that ${he(h)} did not even look at the window.`,
  );
  para();
  add(`${pick(['Later, the rain stopped.', 'In the afternoon, the clouds began to move away.', 'At last, the rain slowed down to a drizzle, and then it stopped.', 'By evening, the sky was clearing.'])} ${pick(['A big rainbow stretched across the sky.', 'The sun peeked out, and a rainbow appeared.', 'Everything outside was shiny and wet.', 'The birds began to sing again.'])}`);
  say(h, pick(['Look! A rainbow!', 'The rain is gone!', 'That was the best rainy day ever!']), 'excited');
  maybe(0.5, () => add(`${N(h)} put on ${his(h)} boots and ran outside to jump in the puddles. Splash!`));
  lesson(s, 'fun', p);
}

const SEEDS = [
  { seed: 'a sunflower seed', grow: 'a tall sunflower', result: 'It was so tall that it was taller than {him}, with a big yellow face that looked at the sun.' },
  { seed: 'a bean', grow: 'a bean plant', result: 'It climbed up a stick, and soon there were long green beans hanging from it.' },
  { seed: 'a pumpkin seed', grow: 'a pumpkin', result: 'By autumn, there was a big round orange pumpkin in the garden.' },
  { seed: 'a tomato seed', grow: 'a tomato plant', result: 'Little green tomatoes grew on it, and then they turned bright red.' },
  { seed: 'a strawberry seed', grow: 'a strawberry plant', result: 'Little white flowers came first, and then sweet red strawberries.' },
  { seed: 'an apple seed', grow: 'a little apple tree', result: 'It was small, but it was a real tree with real green leaves.' },
  { seed: 'a carrot seed', grow: 'carrots', result: 'When {he} pulled on the green leaves, out came a bright orange carrot!' },
];

/** Plants a seed and must learn to wait. */
function arcGarden(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const sd = pick(SEEDS);
  const p = s.parent;
  intro(s);
  para();
  addAny(
    () => `${when(t, 'warm')}, ${N(p)} gave ${N(h)} ${sd.seed}.`,
    () => `${when(t, 'warm')}, ${N(h)} found ${sd.seed}.`,
  );
  say(p, `If you plant it and take care of it, it will grow into ${sd.grow}.`, 'teach');
  addAny(
    () => `So ${N(h)} dug a little hole, put in the seed, and covered it with soil.`,
    () => `${N(h)} found a sunny spot in the garden. ${capFirst(he(h))} made a hole with ${his(h)} finger and dropped the seed inside.`,
    () => `Together, they filled a pot with soil. ${N(h)} pushed the seed in and patted the soil down.`,
  );
  addAny(
    () => `${S(h)} gave it some water and said, "Grow, little seed!"`,
    () => `Then ${he(h)} poured a little water on top and whispered, "Please grow big and strong."`,
    () => `${S(h)} watered it carefully with ${his(h)} little watering can.`,
  );
  para();
  addAny(
    () => `The next morning, ${N(h)} ran outside to look. But there was nothing there, only brown dirt.`,
    () => `The next day, ${N(h)} checked on the seed before breakfast. Nothing had happened.`,
    () => `${N(h)} wanted to see the plant right away. But the soil looked just the same as before.`,
  );
  addAny(
    () => `${S(h)} looked the next day, and the day after that. Still nothing.`,
    () => `Day after day, ${N(h)} watered the seed, but nothing happened.`,
  );
  say(h, pick(['Why is it not growing?', 'Maybe it is broken.', 'It is taking forever!']), 'sad');
  say(p, pick(['Seeds need time. You have to be patient.', 'The seed is busy under the ground. Keep watering it.', 'Good things take time.']), 'teach');
  add(`So ${N(h)} kept watering it ${pick(['every day', 'every morning', 'every evening'])}, even when ${he(h)} wanted to give up.`);
  para();
  addAny(
    () => `Then, one morning, ${N(h)} saw a tiny green sprout poking out of the soil!`,
    () => `After ${pick(['a week', 'two weeks', 'many days'])}, something happened. Two little green leaves had popped up!`,
    () => `Then, one sunny day, ${N(h)} gasped. There was a little green shoot where the seed had been.`,
  );
  say(h, pick(['It\'s growing! It\'s really growing!', 'Come and look! It is alive!']), 'excited');
  addAny(
    () => `Every week, the little plant grew bigger and bigger.`,
    () => `${N(h)} kept watering it, and it kept growing.`,
    () => `The sun shone and the rain fell, and the plant grew taller every day.`,
  );
  add(sd.result.replace(/\{him\}/g, him(h)).replace(/\{he\}/g, he(h)));
  maybe(0.6, () => add(`${N(h)} was very proud. ${capFirst(he(h))} showed it to ${pick(['everyone', 'all of ' + his(h) + ' friends', 'the whole family'])}.`));
  lesson(s, 'patience', p);
}

/** A newcomer is shy; the hero says hello; they become friends. */
function arcNewFriend(s: St): void {
  const { t, h } = s;
  const { S, N, O, P, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const f = makeFriend(s, 'new');
  const game = act(pick(['play tag', 'play catch', 'play hide and seek', 'build a sandcastle', 'look for bugs', 'draw with chalk', 'race to the big tree', 'swing on the swings', 'skip stones', 'pick flowers']));
  const where = h.kind === 'child' ? pick(['to the house next door', 'to the town', 'to ' + his(h) + ' school', 'into ' + his(h) + ' class']) : pick(['to ' + s.place.the, 'to the other side of ' + s.place.the]);
  intro(s);
  para();
  add(`${when(t)}, ${N(f)} moved ${where}.`);
  addAny(
    () => `${S(f)} stood all alone and did not talk to anyone.`,
    () => `${S(f)} looked shy and a little bit sad.`,
    () => `${S(f)} did not know anyone, so ${he(f)} sat by ${him(f)}self.`,
  );
  addAny(
    () => `${N(h)} saw ${O(f)} and felt a little shy too.`,
    () => `${N(h)} wanted to say hello, but ${he(h)} did not know what to say.`,
  );
  maybe(0.5, () => add(`Then ${N(h)} remembered how it felt to be new.`));
  para();
  add(`${N(h)} took a deep breath and walked over.`);
  say(h, pick([`Hello! My name is ${h.name}. What is your name?`, `Hi! I'm ${h.name}. Do you want to ${game.base} with me?`]), 'shy');
  say(f, `${pick([`I'm ${f.name}.`, `My name is ${f.name}.`])}${t.chance(0.7) ? ' ' + pick(["I just moved here. I don't have any friends yet.", 'Everything here is new to me.', 'I miss my old home.']) : ''}`, 'shy');
  say(h, pick([`Now you have one! Do you want to ${game.base}?`, `You can be my friend! Let's ${game.base}!`, `Do you want to ${game.base} with me?`]), 'happy');
  add(`${P(f)} face ${pick(['lit up', 'broke into a big smile'])}.`);
  para();
  add(`So ${N(h)} and ${N(f)} ${game.past} ${pick(['all afternoon', 'until it was time to go home', 'for a long time'])}.`);
  addAny(
    () => `They found out that they both loved ${pick(['the color blue', 'pancakes', 'funny stories', 'rainy days', 'animals'])}.`,
    () => `${N(f)} was funny and kind, and ${he(f)} knew lots of games.`,
  );
  endPair(s, f);
  lesson(s, 'friends');
}

/** Wanders off, gets lost, stays calm, is found. */
function arcLostHero(s: St): void {
  const { t, h } = s;
  const { S, N, P, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const p = s.parent;
  const place = h.kind === 'child' ? placeByKey(pick(['zoo', 'park', 'beach', 'farm'])) : s.place;
  const lure = pick(['a pretty butterfly', 'a red balloon', 'a funny little bird', 'a rolling ball', 'a bright yellow leaf']);
  const helper: Char = h.kind === 'child'
    ? t.pick<Char>([
        { name: 'the woman', first: `a kind woman in a ${pick(['blue', 'green', 'yellow'])} uniform`, introduced: false, g: 'f', kind: 'adult' },
        { name: 'the man', first: `a friendly man who worked ${place.at}`, introduced: false, g: 'm', kind: 'adult' },
        { name: 'the police officer', first: 'a police officer', introduced: false, g: t.chance(0.5) ? 'm' : 'f', kind: 'adult' },
      ])
    : makeFriend(s, 'new', 'animal');
  s.place = place;
  intro(s);
  para();
  add(`${when(t)}, ${N(h)} went ${place.to} with ${N(p)}.`);
  addAny(
    () => `There were ${pick(place.sights)} and ${pick(place.sights.filter((x) => x !== place.sights[0]))}.`,
    () => `${S(h)} saw ${pick(place.sights)}.`,
  );
  say(p, 'Stay close to me, please.', 'plain');
  add(`But then ${N(h)} saw ${lure}. ${capFirst(he(h))} followed it, and followed it, and followed it.`);
  add(`When ${he(h)} looked around, ${N(p)} was gone!`);
  say(h, `${call(p)}? ${call(p)}, where are you?`, 'scared');
  addAny(
    () => `${N(h)} felt scared and very small.`,
    () => `${P(h)} heart beat fast.`,
  );
  para();
  addAny(
    () => `Then ${he(h)} remembered what ${N(p)} always said: "If you get lost, stay where you are and ask for help."`,
    () => `${N(h)} wanted to run, but ${he(h)} remembered to stay in one place.`,
  );
  add(`Just then, ${N(helper)} came over.`);
  say(helper, pick(['Are you lost, little one?', 'Hello there. Can I help you?', 'Are you okay?']), 'kind');
  say(h, `I can't find my ${call(p).toLowerCase()}.`, 'sad');
  say(helper, pick([`Don't worry. We will find your ${call(p).toLowerCase()} together.`, `Let's go and look for ${him(p)}. I am sure ${he(p)} is looking for you too.`]), 'kind');
  add(`${N(helper)} ${pick([helper.kind === 'adult' ? 'held ' + his(h) + ' hand' : 'walked next to ' + him(h), 'walked next to ' + him(h), 'stayed right beside ' + him(h)])}, and they looked around together.`);
  para();
  add(`Soon, ${he(h)} heard a voice calling ${his(h)} name. It was ${N(p)}!`);
  add(`${N(h)} ran to ${N(p)} and gave ${him(p)} a big hug.`);
  say(p, pick(['I was so worried!', 'There you are! I missed you so much.']), 'kind');
  say(h, `I'm sorry. I will stay close next time.`, 'sad');
  maybe(0.5, () => add(`${N(h)} waved goodbye and said thank you to ${N(helper)}.`));
  lesson(s, 'listen');
}

const BREAKABLES = ['vase', 'cup', 'plate', 'lamp', 'cookie jar', 'bowl', 'flower pot', 'mirror', 'teapot'];

/** Breaks something, is tempted to hide it, tells the truth. */
function arcHonest(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const p = s.parent;
  const thing = pick(BREAKABLES);
  const color = pick(['blue', 'white', 'pretty', 'old', 'green', 'favorite', 'yellow', 'red']);
  const how = pick([
    `was playing ball in the house, even though ${he(h)} knew ${he(h)} was not allowed`,
    `was jumping on the sofa`,
    `was running around the kitchen`,
    `was dancing around the room with ${his(h)} eyes closed`,
    `reached up for a cookie`,
  ]);
  const pet = makePet(s);
  intro(s);
  para();
  add(`${when(t)}, ${N(h)} ${how}.`);
  addAny(
    () => `Crash! ${poss(p.name)} ${color} ${thing} fell to the floor and broke into pieces.`,
    () => `Suddenly, ${poss(p.name)} ${color} ${thing} wobbled and fell. Smash! It broke into little pieces.`,
    () => `${N(h)} bumped the shelf, and ${poss(p.name)} ${color} ${thing} tipped over. It broke in two.`,
  );
  addAny(
    () => `${N(h)} froze. ${capFirst(he(h))} felt ${his(h)} tummy turn over.`,
    () => `${N(h)} was very scared.`,
  );
  say(h, pick(['Oh no! What have I done?', `${call(p)} will be so sad.`]), 'scared');
  para();
  addAny(
    () => `${S(h)} quickly put the pieces under the rug.`,
    () => `${S(h)} thought about hiding the pieces.`,
  );
  add(`${pick(['Then', 'Just then,'])} ${N(pet)} ${pick(['padded', 'walked', 'ran'])} into the room.`);
  addAny(
    () => `For a moment, ${N(h)} thought, "I could say that ${N(pet)} did it."`,
    () => `${N(h)} thought about blaming ${N(pet)}.`,
  );
  addAny(
    () => `But that did not feel right. ${capFirst(poss(h.name))} heart felt heavy.`,
    () => `But ${N(h)} knew that would not be fair. ${capFirst(he(h))} felt worse and worse.`,
    () => `But the more ${N(h)} thought about it, the worse ${he(h)} felt.`,
  );
  para();
  add(`When ${N(p)} came in, ${N(h)} ${pick(['walked up to ' + him(p), 'looked at the floor', 'took a deep breath'])}.`);
  say(h, `${call(p)}, I broke your ${thing}. I'm sorry.`, 'sad');
  addAny(
    () => `${N(p)} was quiet for a moment. Then ${he(p)} knelt down and hugged ${N(h)}.`,
    () => `${N(p)} looked at the pieces, and then at ${N(h)}.`,
  );
  say(p, pick(['Thank you for telling me the truth.', 'I am not angry. I am glad you told me.', 'Things can break, but the truth is more important.']), 'kind');
  maybe(0.6, () => say(p, pick([`But please don't ${how.startsWith('was playing ball') ? 'play ball in the house' : how.startsWith('was jumping') ? 'jump on the sofa' : 'run in the house'} again, okay?`, 'Next time, please be more careful.']), 'teach'));
  addAny(
    () => `Together, they picked up the pieces and glued the ${thing} back together.`,
    () => `Together, they swept up the pieces. Then they went to buy a new ${thing}.`,
  );
  add(`${N(h)} felt ${pick(['light and happy again', 'much better', 'as if a big rock had been lifted off ' + his(h) + ' back'])}.`);
  lesson(s, 'honest', p);
}

/** Finds a map, follows the clues with a friend, finds a humble treasure. */
function arcTreasure(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he } = t;
  const f = makeFriend(s, 'known');
  const found = h.kind === 'child' ? pick(['in the attic', 'inside a dusty book', 'under a loose floorboard', 'in a bottle on the beach', 'behind a picture on the wall', 'at the bottom of an old trunk', "in Grandpa's shed"]) : pick(['in a hollow log', 'under a flat stone', 'tangled in the roots of a tree', 'in a bottle by the water', 'under a pile of leaves']);
  const clues = t.some(['Walk to the tallest tree', 'Cross the little bridge', 'Go past the big gray rock', 'Count twenty steps toward the sun', 'Turn left at the old fence', 'Look for a stone shaped like a heart', 'Follow the path of white pebbles', 'Go down the hill to the pond', 'Find the tree with a hole in it', 'Walk along the stream until you hear a waterfall'], 3);
  const prize = pick(['old toys and a note. The note said, "Play and share!"', 'shiny stones of every color', 'old coins and buttons', 'a note. It said, "The real treasure is a good friend."', 'a bag of seeds and a note. The note said, "Plant me!"', 'a little brass bell that rang like music', 'a golden key and a picture of a castle', 'marbles, ribbons, and a tiny silver spoon', 'an old compass that still pointed north', 'a letter from a child who lived there long ago']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(h)} found an old map ${found}.`,
    () => `${when(t)}, ${S(h)} was looking ${found} when ${he(h)} found a piece of old paper. It was a map!`,
    () => `${when(t)}, something strange happened. ${N(h)} found a rolled-up map ${found}.`,
  );
  add(pick(['It had a big red X on it!', 'There was a big X in one corner and a dotted line that led to it.', 'Someone had drawn a path and a big X on it.', 'At the bottom, it said, "Treasure is here."']));
  say(h, pick(['A treasure map!', 'Wow! Treasure!', 'I wonder what is buried there!']), 'excited');
  addAny(
    () => `${S(h)} ran to show ${N(f)}.`,
    () => `${S(h)} could not wait to tell ${N(f)}.`,
  );
  say(f, pick(["Let's follow it!", 'We have to find the treasure!', 'Let\'s go right now!']), 'excited');
  para();
  add(`The map said, "${clues[0]}." ${pick(['So they did.', 'So off they went.', 'They found it easily.'])}`);
  addAny(
    () => `Then it said, "${clues[1]}." ${pick(['So they did that too.', 'That took a little longer.'])}`,
    () => `Next, the map said, "${clues[1]}," and then, "${clues[2]}."`,
  );
  addAny(
    () => `The path was long, and ${N(h)} got tired, but ${N(f)} said, "Come on, we are almost there!"`,
    () => `On the way, they got a little lost, but they looked at the map again and found the right way.`,
    () => `They helped each other over the rocks and through the tall grass.`,
    () => `${N(h)} read the map, and ${N(f)} led the way.`,
  );
  addAny(
    () => `At last, they came to a spot with a ${pick(['big', 'flat', 'mossy'])} stone. That was where the X was.`,
    () => `At last, they found the place. It was right under a ${pick(['crooked old tree', 'big mossy rock', 'little wooden sign'])}.`,
  );
  addAny(
    () => `They dug and dug${h.kind === 'child' ? ' with their hands' : pick(['', ' with a stick'])} until they hit something hard. It was a little wooden box!`,
    () => `They dug a deep hole. Clunk! There was an old metal box inside.`,
    () => `${N(f)} started to dig, and soon ${he(f)} found a box with a rusty lock.`,
  );
  para();
  add(`Inside the box, they found ${prize}.`);
  addAny(
    () => `It was not gold, but ${N(h)} and ${N(f)} thought it was the best treasure in the world.`,
    () => `${N(h)} and ${N(f)} could not believe their eyes.`,
    () => `${N(h)} held it up so that ${N(f)} could see.`,
  );
  say(h, pick(['The best part was looking for it together.', 'What an adventure!', 'Let\'s make a map for someone else to find!', 'This was the best day ever!']), 'happy');
  maybe(0.5, () => endPair(s, f));
}

const RECIPES = [
  { dish: 'a chocolate cake', steps: 'They cracked the eggs, poured in the milk, and stirred in the chocolate.', oops: 'flour flew everywhere, and soon they were both white like ghosts' },
  { pl: true, dish: 'pancakes', steps: 'They mixed the flour, eggs, and milk until the batter was smooth.', oops: 'one pancake flipped so high that it landed on the floor' },
  { pl: true, dish: 'cookies', steps: 'They mixed the butter and sugar, then added flour and little bits of chocolate.', oops: 'the dog stole one cookie right off the table' },
  { dish: 'vegetable soup', steps: 'They washed the carrots, cut the potatoes, and put everything in a big pot.', oops: 'a carrot rolled off the table and under the fridge' },
  { dish: 'banana bread', steps: 'They mashed the bananas with a fork and mixed them with flour and eggs.', oops: 'a big lump of banana landed in {p} hair' },
  { dish: 'a fruit salad', steps: 'They cut up apples, bananas, and grapes and put them in a big bowl.', oops: 'a grape bounced across the kitchen like a little ball' },
  { dish: 'a pizza', steps: 'They rolled out the dough, spread the red sauce, and put cheese on top.', oops: 'the cheese ended up more on the floor than on the pizza' },
  { pl: true, dish: 'muffins', steps: 'They stirred the batter and dropped in lots of blueberries.', oops: 'the bowl tipped over, and batter dripped off the table' },
];

/** Cooking with a grown-up; a funny mishap; sharing the result. */
function arcCook(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const p = s.parent;
  const r = pick(RECIPES);
  const forWho = pick(['for a special surprise', 'for the neighbors', "for Grandpa's birthday", 'for a party', 'just because it was a happy day', 'for the school fair']);
  intro(s);
  para();
  add(`${when(t)}, ${N(p)} said, "Would you like to help me make ${r.dish}?"`);
  say(h, pick(['Yes, please!', 'Oh yes!', 'Can I stir?']), 'excited');
  add(`They were making it ${forWho.replace("Grandpa's", p.name === 'Grandpa' ? "Grandma's" : "Grandpa's")}.`);
  addAny(
    () => `${N(h)} washed ${his(h)} hands and put on a big apron.`,
    () => `First, they washed their hands. Then ${N(p)} found a little apron for ${N(h)}.`,
    () => `${N(h)} pulled a chair up to the counter so ${he(h)} could reach.`,
  );
  add(r.steps);
  maybe(0.5, () => add(`${N(h)} ${pick(['counted the spoons of sugar', 'stirred and stirred', 'licked the spoon when no one was looking', 'helped to measure everything'])}.`));
  para();
  add(`But then ${r.oops.replace('{p}', poss(p.name))}!`);
  addAny(
    () => `${N(h)} looked at ${N(p)}, and ${N(p)} looked at ${N(h)}. Then they both started to laugh.`,
    () => `For a moment, ${N(h)} was worried. But ${N(p)} just laughed.`,
  );
  say(p, pick(['That is what happens when you cook!', 'Every good cook makes a mess sometimes.', 'No problem. We will clean it up together.']), 'happy');
  para();
  addAny(
    () => `At last, ${r.dish.replace(/^an? /, 'the ').replace(/^(?!the )/, 'the ')} ${'pl' in r ? 'were' : 'was'} ready. ${'pl' in r ? 'They' : 'It'} smelled wonderful.`,
    () => `Soon the whole house smelled warm and sweet.`,
    () => `After a while, ${N(p)} said, "It's ready!"`,
  );
  addAny(
    () => `They shared ${'pl' in r ? 'them' : 'it'} with everyone, and everyone said ${'pl' in r ? 'they were' : 'it was'} the best ${r.dish.replace(/^an? /, '')} they had ever tasted.`,
    () => `${N(h)} took the first bite. "Mmm!" ${he(h)} said. "We did it!"`,
  );
  lesson(s, pick<LessonKey>(['fun', 'teamwork']), p);
}

/** Can't sleep; counts, worries; a grown-up helps; falls asleep and dreams. */
function arcBedtime(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, para, he, him, his } = t;
  const p = s.parent;
  const count = pick(['sheep', 'stars', 'clouds', 'ducks', 'bunnies']);
  const dream = pick(['flying over the rooftops', 'swimming with dolphins', 'a castle made of candy', 'a picnic on the moon', 'riding on a big friendly whale', 'a garden where the flowers could sing']);
  intro(s);
  para();
  add(`${when(t, 'night')}, it was time for bed. ${N(h)} ${h.kind === 'child' ? 'brushed ' + his(h) + ' teeth and put on ' + his(h) + ' pajamas' : 'curled up in ' + his(h) + ' bed'}.`);
  add(weatherLine(t, 'night'));
  add(`But ${N(h)} could not sleep.`);
  addAny(
    () => `${S(h)} tossed and turned.`,
    () => `${S(h)} counted ${count}: one, two, three, all the way to ${pick(['twenty', 'fifty', 'a hundred'])}. But ${he(h)} was still awake.`,
    () => `${S(h)} closed ${his(h)} eyes, then opened them again.`,
  );
  add(`${S(h)} ${pick(['got up and went to find', 'called for'])} ${N(p)}.`);
  say(h, pick([`${call(p)}, I can't sleep.`, `My eyes don't want to close.`]), 'sad');
  para();
  addAny(
    () => `${N(p)} sat on the bed and read ${N(h)} a story about ${pick(['a sleepy bear', 'a little boat on a calm sea', 'a moon that sang lullabies', 'a cloud that wanted to rest'])}.`,
    () => `${N(p)} sang a soft song and ${pick(['stroked', 'patted'])} ${poss(h.name)} head.`,
    () => `${N(p)} brought ${N(h)} a cup of warm milk and tucked ${him(h)} in.`,
  );
  say(p, pick(['Close your eyes and think of something happy.', 'Take three slow breaths, like this.', 'Goodnight, my little one. I love you.']), 'kind');
  add(`${N(h)} ${pick(['yawned a big yawn', 'closed ' + his(h) + ' eyes', 'snuggled under the blanket'])}.`);
  add(`Soon ${he(h)} was fast asleep.`);
  add(`That night, ${N(h)} dreamed of ${dream}.`);
  add(`In the morning, ${he(h)} woke up ${pick(['happy and rested', 'with a big smile', 'ready for a new day'])}.`);
}

const OUTINGS: Record<string, { see: string[]; treat: string; oops: string }> = {
  zoo: { see: ['a lion with a big mane', 'tall giraffes eating leaves', 'monkeys swinging from branch to branch', 'a baby elephant spraying water', 'penguins sliding into the water'], treat: 'an ice cream cone', oops: 'the ice cream fell off the cone and landed with a plop on the ground' },
  beach: { see: ['big waves crashing on the sand', 'a crab walking sideways', 'seagulls flying over the water', 'a boat with a white sail', 'shells of every color'], treat: 'a bag of popcorn', oops: 'a seagull swooped down and took a piece of popcorn' },
  farm: { see: ['a cow with a little calf', 'pigs rolling in the mud', 'hens and fluffy chicks', 'a big tractor', 'a horse eating hay'], treat: 'a cup of fresh apple juice', oops: 'a goat ate a bite out of the paper cup' },
  park: { see: ['ducks on the pond', 'dogs chasing sticks', 'a man selling balloons', 'children flying kites', 'squirrels running up the trees'], treat: 'a big pretzel', oops: 'a cheeky squirrel ran off with a piece of the pretzel' },
  lake: { see: ['swans gliding on the water', 'fish jumping', 'a family in a red boat', 'a frog on a lily pad', 'dragonflies over the reeds'], treat: 'a picnic lunch', oops: 'a duck waddled over and tried to eat the sandwiches' },
};

/** A family trip: sights, a small mishap, kindness, a happy tired ride home. */
function arcTrip(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const key = pick(Object.keys(OUTINGS));
  const o = OUTINGS[key]!;
  const place = placeByKey(key);
  const p = s.parent;
  s.place = place;
  intro(s);
  para();
  add(`${when(t, 'sunny')}, ${N(p)} took ${N(h)} ${place.to}.`);
  say(h, pick(['Hooray!', 'I can\'t wait!', 'This is going to be the best day ever!']), 'excited');
  const [a, b, c] = t.some(o.see, 3);
  add(`First, they saw ${a}.`);
  add(`Then they saw ${b}${t.chance(0.5) ? `, and ${c}` : ''}.`);
  maybe(0.6, () => say(h, pick(['Look at that!', 'Wow! So cool!', `${call(p)}, look!`]), 'excited'));
  para();
  add(`After a while, ${N(p)} bought ${N(h)} ${o.treat}.`);
  add(`But then ${o.oops}!`);
  addAny(
    () => `${N(h)} looked like ${he(h)} was about to cry.`,
    () => `${N(h)} did not know whether to laugh or cry.`,
  );
  addAny(
    () => `Then ${N(h)} started to laugh, and ${N(p)} laughed too. They shared what was left.`,
    () => `${N(p)} smiled and said, "Don't worry. We can share mine."`,
  );
  para();
  add(`${capFirst(pick(['on the way home', 'that evening', 'in the car']))}, ${N(h)} was so tired that ${he(h)} ${pick(['fell asleep', 'could hardly keep ' + his(h) + ' eyes open'])}.`);
  add(`${pick(['It had been the best day ever.', `${capFirst(he(h))} dreamed about everything ${he(h)} had seen.`, 'What a wonderful day it had been!'])}`);
}

/** Two friends argue about a game, part, miss each other, make up, take turns. */
function arcQuarrel(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const f = makeFriend(s, 'known');
  const [g1, g2] = t.some(['play tag', 'play hide and seek', 'build a castle', 'play catch', 'play house', 'draw pictures', 'play pirates', 'race to the big tree', 'play on the swings', 'look for bugs', 'play a game of ball'], 2).map(act);
  intro(s);
  para();
  add(`${when(t)}, ${N(h)} and ${N(f)} were playing ${s.place.at}.`);
  say(h, `Let's ${g1!.base}!`, 'excited');
  say(f, `No, I want to ${g2!.base}!`, 'angry');
  addAny(
    () => `"${capFirst(g1!.ing)} is more fun!" said ${N(h)}. "No, it is not!" said ${N(f)}.`,
    () => `They argued and argued. Neither of them wanted to give in.`,
    () => `${N(h)} said ${pick(['tag', 'their game', 'the first game'])} was better. ${N(f)} said it was boring. Soon they were both shouting.`,
  );
  add(`${N(h)} ${pick([h.kind === 'child' ? 'stamped ' + his(h) + ' foot' : 'turned away', 'turned around', h.kind === 'child' ? 'crossed ' + his(h) + ' arms' : 'turned away'])}. "${pick(['Then I will play by myself!', 'Fine! I don\'t need you!', 'You never want to play my games!'])}" ${he(h)} said.`);
  add(`${N(f)} ${pick(['walked away', 'went home', 'went to the other side of ' + s.place.the])}.`);
  para();
  add(`${N(h)} tried to ${g1!.base} alone. But it was ${pick(['no fun at all', 'boring without a friend', 'not the same'])}.`);
  addAny(
    () => `Far away, ${N(f)} was not having fun either.`,
    () => `On the other side of ${s.place.the}, ${N(f)} sat alone, looking sad.`,
    () => `${N(f)} was lonely too.`,
  );
  addAny(
    () => `${N(h)} missed ${poss(f.name)} laugh.`,
    () => `${N(h)} thought about all the fun they used to have together.`,
  );
  para();
  add(`At last, ${N(h)} walked over to ${N(f)}.`);
  say(h, `I'm sorry, ${f.name}. I was not a good friend.`, 'shy');
  say(f, pick(["I'm sorry too.", 'I was grumpy too. I\'m sorry.']), 'shy');
  say(h, pick([`Let's ${g2!.base} first, and then we can ${g1!.base}.`, `How about we take turns?`]), 'happy');
  add(`So they did. First they ${g2!.past}, and then they ${g1!.past}.`);
  maybe(0.6, () => add(pick(['Both games were more fun with a friend.', 'It turned out that both games were fun, as long as they played together.', 'They laughed so much that they forgot what the fight was about.'])));
  endPair(s, f);
  lesson(s, 'sorry');
}

/** An animal wishes it were like another; its own gift saves the day. */
function arcYourself(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const me = h.sp!;
  const wishes: { w: string; other: string; try: string }[] = [];
  if (!me.fly) wishes.push({ w: 'fly like the birds', other: 'robin', try: `${he(h)} climbed onto a rock, flapped ${his(h)} ${h.sp!.n === 'turtle' ? 'legs' : 'arms'}, and jumped. Bump! ${capFirst(he(h))} landed in the grass` });
  if (me.size !== 'big') wishes.push({ w: 'be big and strong like the bear', other: 'bear', try: `${he(h)} puffed up ${his(h)} chest and walked with big, heavy steps. But ${he(h)} was still small` });
  if (me.size === 'big') wishes.push({ w: 'be small like the mouse', other: 'mouse', try: `${he(h)} tried to hide behind a little flower. But everyone could still see ${him(h)}` });
  if (!me.swim) wishes.push({ w: 'swim like the fish', other: 'fish', try: `${he(h)} jumped into the pond with a big splash. ${capFirst(he(h))} sank and came back up, coughing and wet` });
  if (me.move !== 'run' && me.size !== 'big') wishes.push({ w: 'run as fast as the deer', other: 'deer', try: `${he(h)} ran as fast as ${he(h)} could. But ${he(h)} tripped and rolled down the hill` });
  const w = pick(wishes);
  type Gift = { can: boolean; problem: string; save: string };
  const gifts: Gift[] = [
    { can: me.size !== 'big', problem: `a baby bird fell into a narrow crack between two rocks. The crack was too small for anyone to reach inside`, save: `${N(h)} was small enough to squeeze in. ${capFirst(he(h))} gently pushed the baby bird out to safety` },
    { can: me.size === 'big', problem: `a big log fell across the path, and the little animals could not get home`, save: `${N(h)} pushed the log with ${his(h)} strong body, and it rolled out of the way` },
    { can: me.swim === true, problem: `a little rabbit's boat of bark floated away on the stream, with the rabbit still in it`, save: `${N(h)} swam after the boat, caught it, and pushed it back to the shore` },
    { can: me.fly === true, problem: `a little mouse got lost in the tall grass, and no one could see where he was`, save: `${N(h)} flew high up into the sky, looked down, and spotted him right away` },
    { can: me.climb === true, problem: `a kitten was stuck at the top of a tall tree`, save: `${N(h)} climbed up the tree and helped the kitten climb down, one branch at a time` },
    { can: me.size === 'tiny', problem: `a key fell into a tiny hole in the ground, and nobody could get it out`, save: `${N(h)} crawled right into the hole and pushed the key back up` },
  ].filter((g) => g.can);
  const g = pick(gifts);
  intro(s);
  para();
  add(`${N(h)} always wished ${he(h)} could ${w.w}.`);
  addAny(
    () => `${capFirst(he(h))} watched the ${pluralOf(w.other)} every day and sighed.`,
    () => `"Why can't I ${w.w}?" ${he(h)} asked ${his(h)} mother.`,
  );
  add(`${when(t)}, ${he(h)} decided to try. ${capFirst(w.try)}.`);
  addAny(
    () => `Some of the other animals laughed.`,
    () => `${S(h)} felt silly and a little bit sad.`,
  );
  say(h, `I am just a ${me.n}. I can't do anything special.`, 'sad');
  para();
  add(`The next day, ${g.problem}.`);
  addAny(
    () => `Everyone was worried. No one knew what to do.`,
    () => `The animals tried and tried, but nothing worked.`,
  );
  add(`${N(h)} had an idea. ${g.save}.`);
  say(h, pick(['I did it!', 'Everyone is safe!']), 'excited');
  add(`All the animals cheered for ${N(h)}.`);
  maybe(0.7, () => say(makeFriend(s, 'new', 'animal'), pick([`You were the only one who could do that, ${h.name}!`, `Thank you, ${h.name}! You are a hero!`]), 'happy'));
  add(`${N(h)} felt proud. ${capFirst(he(h))} did not need to ${w.w.replace(/ like the .*| as fast as .*/, '')}. Being a ${me.n} was just right.`);
  lesson(s, 'yourself');
}

/** Doesn't want to tidy up; makes it a game; finds something lost. */
function arcTidy(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, para, he, his } = t;
  const p = s.parent;
  const lost = makeItem(t, 'lose');
  const mess = t.some(['toys', 'clothes', 'books', 'crayons', 'socks', 'blocks', 'puzzle pieces', 'stuffed animals'], 3);
  intro(s);
  para();
  addAny(
    () => `${capFirst(poss(h.name))} room was very messy.`,
    () => `${N(h)} had a very messy room.`,
    () => `${N(h)} did not like to clean up, so ${his(h)} room was a big mess.`,
  );
  addAny(
    () => `There were ${mess[0]} on the floor, ${mess[1]} on the bed, and ${mess[2]} everywhere else.`,
    () => `${capFirst(mess[0])} covered the floor, and ${mess[1]} were piled up on the chair.`,
    () => `You could not even see the floor! There were ${mess[0]} and ${mess[1]} everywhere.`,
  );
  add(`${when(t)}, ${N(p)} said, "Please clean your room before we go ${s.place.to}."`);
  say(h, pick(['But it will take forever!', 'I don\'t want to!', 'Cleaning is boring!']), 'angry');
  para();
  say(p, pick(["Let's make it a game. Can you put everything away before this song ends?", "I bet you can't pick up ten things before I count to twenty!", "Let's pretend you are a robot that cleans up!"]), 'kind');
  add(`${N(h)} ${pick(['liked games', 'could not say no to a game', 'grinned'])}.`);
  addAny(
    () => `${capFirst(he(h))} picked up the ${mess[0]} and put them in the box. Then ${he(h)} ${mess[1] === 'clothes' || mess[1] === 'socks' ? 'folded' : 'stacked'} the ${mess[1]} and put them away.`,
    () => `Zoom! ${capFirst(he(h))} rushed around the room, picking things up as fast as ${he(h)} could.`,
  );
  addAny(
    () => `Then, under a pile of ${mess[2]}, ${he(h)} found something.`,
    () => `When ${he(h)} moved the ${mess[2]}, something caught ${his(h)} eye.`,
    () => `Under the bed, behind an old shoe, ${he(h)} found a surprise.`,
  );
  add(`It was ${his(h)} ${lost.full}! ${capFirst(he(h))} had lost ${lost.it} ${pick(['weeks ago', 'a long time ago', 'last month'])}.`);
  say(h, `My ${lost.n}! I thought ${lost.itS} ${lost.was} gone forever!`, 'excited');
  para();
  addAny(
    () => `Soon the room was clean and tidy.`,
    () => `Before long, everything was in its place.`,
    () => `In no time at all, the room looked brand new.`,
  );
  addAny(
    () => `${N(p)} looked around and smiled. "Well done! Now let's go ${s.place.to}."`,
    () => `${N(h)} looked around. ${capFirst(he(h))} could see the whole floor!`,
  );
  add(`${N(h)} felt proud of ${his(h)} clean room.`);
  lesson(s, 'careful');
}

/** First snow of winter: dressing up, a snowman, snow angels, cocoa. */
function arcSnow(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const f = makeFriend(s, 'known');
  const face = pick(['a carrot for a nose', 'two black stones for eyes', 'a row of buttons for a smile', 'sticks for arms', 'a pine cone for a nose']);
  const named = pick(['Mister Frosty', 'Snowy', 'Sir Chilly', 'Mr. Button', 'Frosty', 'Big Joe']);
  intro(s);
  para();
  addAny(
    () => `${when(t, 'snowy')}, ${N(h)} looked out of the window. Everything was white!`,
    () => `${when(t, 'snowy')}, ${N(h)} woke up and saw that the whole world was covered in snow.`,
    () => `It snowed all night long. In the morning, ${N(h)} ran to the window.`,
  );
  say(h, pick(['It snowed! It snowed!', 'Snow! Real snow!', 'Look at all the snow!']), 'excited');
  if (h.kind === 'child')
    addAny(
      () => `${capFirst(he(h))} put on ${his(h)} warm coat, ${his(h)} woolly hat, ${his(h)} ${pick(['red', 'blue', 'striped'])} mittens, and ${his(h)} big boots.`,
      () => `${capFirst(he(h))} got dressed as fast as ${he(h)} could: coat, hat, scarf, mittens, and boots.`,
    );
  else add(`${capFirst(he(h))} wrapped a warm scarf around ${his(h)} neck and went outside.`);
  addAny(
    () => `Outside, ${he(h)} met ${N(f)}.`,
    () => `${N(f)} was already outside, throwing snow in the air.`,
  );
  para();
  addAny(
    () => `They rolled a big snowball for the bottom and a smaller one for the head.`,
    () => `They decided to build a snowman. They rolled the snow into three big balls and stacked them up.`,
    () => `Together, they built the biggest snowman ${h.kind === 'child' ? 'on the street' : 'in ' + s.place.the}.`,
  );
  add(`They gave the snowman ${face}${t.chance(0.5) ? ` and named him ${named}` : ''}.`);
  maybe(0.5, () => add(`${N(h)} put ${his(h)} own ${pick(['scarf', 'hat'])} on the snowman so he would not be cold.`));
  addAny(
    () => `Then they lay down in the snow and made snow angels.`,
    () => `Then they had a snowball fight. ${N(f)} threw one, and it hit ${N(h)} right on the nose! They both laughed.`,
    () => `Then they slid down the hill on a ${pick(['sled', 'big tray', 'piece of cardboard'])}. Whee!`,
    () => `Then they made a long line of footprints and tried to walk backward in them.`,
  );
  para();
  addAny(
    () => `When their ${h.kind === 'child' ? 'fingers' : 'toes'} were cold, they went inside.`,
    () => `At last, their noses were red and their ${h.kind === 'child' ? 'fingers' : 'toes'} were frozen, so they went home.`,
  );
  add(`${N(s.parent)} made them ${pick(['hot cocoa with marshmallows', 'warm soup', 'hot milk with honey', 'warm apple pie'])}.`);
  say(f, pick(['This was the best snow day ever!', 'Can we play in the snow again tomorrow?', 'I love winter!']), 'happy');
  addAny(
    () => `${N(h)} looked out of the window at their snowman and smiled.`,
    () => `Outside, the snowman stood in the garden, smiling his button smile.`,
    () => `That night, ${N(h)} dreamed of snowflakes, all different, all dancing.`,
  );
}

/** A picnic; the wind, ants, or a dog cause trouble; laughter and sharing. */
function arcPicnic(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, para, his } = t;
  const f = makeFriend(s, 'known');
  const FOODS: [string, string][] = [['sandwiches', 'a sandwich'], ['apples', 'an apple'], ['cheese', 'a piece of cheese'], ['grapes', 'a grape'], ['cookies', 'a cookie'], ['lemonade', 'a drop of lemonade'], ['strawberries', 'a strawberry'], ['little cakes', 'a little cake'], ['carrot sticks', 'a carrot stick'], ['bread and jam', 'a piece of bread'], ['muffins', 'a muffin'], ['orange juice', 'a drop of juice'], ['cherries', 'a cherry']];
  const picked = t.some(FOODS, 3);
  const foods = picked.map((x) => x[0]);
  const one = picked[0]![1];
  const grab = picked[0]![1].startsWith('a drop') ? 'a sandwich' : one;
  const trouble = t.rng();
  const place = placeFor(t, h, 'open');
  s.place = place;
  intro(s);
  para();
  add(`${when(t, 'sunny')}, ${N(h)} and ${N(f)} went on a picnic ${place.at}.`);
  add(`They packed a basket with ${foods[0]}, ${foods[1]}, and ${foods[2]}.`);
  add(`They found a nice spot and spread out a ${pick(['red and white', 'blue', 'big', 'soft'])} blanket.`);
  para();
  if (trouble < 0.33) {
    add(`Just as they sat down, a big gust of wind came. Whoosh! It blew ${poss(h.name)} hat right off ${his(h)} head!`);
    add(`The hat rolled and tumbled across the grass. ${N(h)} and ${N(f)} ran after it.`);
    add(`At last, the hat landed ${pick(['on a bush', 'on a sleepy cow', 'in a puddle', 'on top of a sheep'])}.`);
    add(`They laughed so hard that they had to sit down.`);
  } else if (trouble < 0.66) {
    add(`But when they opened the basket, they saw a long line of ants marching toward the food!`);
    say(f, 'The ants want a picnic too!', 'excited');
    add(`${N(h)} put ${one} far away on a leaf. The ants went to that instead.`);
    add(`Now everyone had a picnic.`);
  } else {
    add(`Suddenly, a ${pick(['small brown dog', 'fluffy white dog', 'puppy with a red collar'])} ran up, grabbed ${grab}, and ran off!`);
    add(`${N(h)} and ${N(f)} chased the dog around and around the ${place.key === 'farm' ? 'barn' : 'tree'}.`);
    add(`The dog's owner came running and said sorry. The dog wagged its tail. It looked so happy that ${N(h)} could not be cross.`);
  }
  para();
  add(`Then they sat on the blanket and ${pick(['enjoyed', 'shared'])} the ${foods[1]} and ${foods[2]}.`);
  addAny(
    () => `Everything tasted better outside.`,
    () => `They watched the clouds and found shapes: a bunny, a boat, and a big ice cream cone.`,
  );
  say(h, pick(['Best picnic ever!', 'Let\'s do this again next week!']), 'happy');
  endPair(s, f);
}

/** Helps an old neighbour; a kindness returned. */
function arcNeighbor(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, his } = t;
  const [nm, ng] = pick(NEIGHBORS);
  const n: Char = { name: nm, first: `old ${nm}`, introduced: false, g: ng, kind: 'adult' };
  const job = pick([
    { need: `was carrying heavy bags of shopping up the hill`, help: `${N(h)} took one of the bags and helped carry it all the way home` },
    { need: `could not find ${his(n)} glasses`, help: `${N(h)} looked all around the garden and found them on top of the bird bath` },
    { need: `had a garden full of weeds`, help: `${N(h)} pulled the weeds, one by one, until the flower beds were neat` },
    { need: `had a cat that was stuck on the fence`, help: `${N(h)} climbed onto a box and gently lifted the cat down` },
    { need: `had a path covered in leaves`, help: `${N(h)} swept the leaves into a big pile. Then ${he(h)} jumped in it, just once` },
    { need: `could not reach the apples on ${his(n)} tree`, help: `${N(h)} climbed the ladder while ${N(s.parent)} held it, and picked a whole basket of apples` },
  ]);
  const gift = pick(['gave {h} a plate of warm cookies', 'gave {h} a shiny red apple', 'gave {h} a jar of homemade jam', 'gave {h} an old book full of pictures', 'gave {h} a little wooden toy', 'told {h} a funny story about when ' + he(n) + ' was young', 'showed {h} how to whistle with a blade of grass', 'let {h} pick some flowers to take home']);
  intro(s);
  para();
  add(`Next door lived ${N(n)}.`);
  maybe(0.5, () => add(`${capFirst(he(n))} was very old and walked with a cane.`));
  add(`${when(t)}, ${N(h)} saw that ${N(n)} ${job.need}.`);
  addAny(
    () => `${S(h)} ran over right away.`,
    () => `${S(h)} told ${N(s.parent)} that ${he(h)} wanted to help.`,
  );
  say(h, pick([`Can I help you, ${nm}?`, `${nm}, let me help!`]), 'kind');
  para();
  add(`${job.help}.`);
  say(n, pick(['Thank you, dear. You are very kind.', 'What a helpful young friend you are!', 'I could never have done it without you.']), 'happy');
  add(`${N(n)} ${gift.replace('{h}', N(h))}.`);
  add(`${N(h)} ${pick(['skipped', 'walked', 'ran'])} home with a warm feeling inside.`);
  maybe(0.5, () => add(`After that, ${N(h)} visited ${N(n)} every ${pick(WEEKDAYS)}.`));
  maybe(0.3, () => endSolo(s));
  lesson(s, 'kind');
}

/** A loud new instrument, a sleeping baby, and finding the right time to play. */
function arcMusic(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const inst = pick([
    { n: 'drum', sound: 'Boom! Boom! Boom!' },
    { n: 'trumpet', sound: 'Toot! Toot! Toooot!' },
    { n: 'whistle', sound: 'Tweet! Tweeeet!' },
    { n: 'xylophone', sound: 'Ding, dong, ding!' },
    { n: 'tambourine', sound: 'Jingle, jangle, jingle!' },
    { n: 'piano', sound: 'Plink, plonk, plink!' },
  ]);
  const sleeper = h.kind === 'child' ? pick(['the baby', 'Grandpa', 'the baby', 'Grandma']) : pick(['the baby birds', 'old Grandpa Owl', 'the baby']);
  const f = makeFriend(s, 'known');
  intro(s);
  para();
  add(`${when(t)}, ${N(h)} got a ${pick(['shiny new', 'little', 'bright red', 'real'])} ${inst.n} for ${his(h)} birthday.`);
  add(`${capFirst(he(h))} played it all day long. ${inst.sound}`);
  add(`But ${sleeper} ${sleeper.endsWith('birds') ? 'were' : 'was'} trying to sleep.`);
  say(s.parent, pick(['Please, not so loud!', `Shh! ${capFirst(sleeper)} ${sleeper.endsWith('birds') ? 'are' : 'is'} sleeping.`]), 'plain');
  addAny(
    () => `${N(h)} stopped. ${capFirst(he(h))} felt sad. Music was ${his(h)} favorite thing.`,
    () => `${N(h)} put the ${inst.n} down and sighed.`,
  );
  para();
  say(s.parent, pick([`Why don't you play outside, where there is lots of room for music?`, 'There is a time for loud music and a time for quiet. Let\'s find the right time.']), 'kind');
  add(`So ${N(h)} took the ${inst.n} ${s.place.to}. ${inst.sound}`);
  add(`${N(f)} heard the music and came ${pick(['running', 'dancing', 'skipping'])}.`);
  say(f, pick(['Can I play too?', 'That sounds great! Let\'s make a band!']), 'excited');
  addAny(
    () => `${N(f)} ${pick(['clapped', 'sang', 'banged on a pot', 'shook a jar of beans'])}, and ${N(h)} played the ${inst.n}.`,
    () => `Soon other friends came too. One sang, one clapped, and one danced.`,
  );
  add(`They put on a little show, and everyone ${pick(['clapped and cheered', 'danced along', 'asked for one more song'])}.`);
  maybe(0.6, () => add(`When they went home, ${sleeper} ${sleeper.endsWith('birds') ? 'were' : 'was'} awake and ${sleeper.endsWith('birds') ? 'were' : 'was'} waiting to hear a quiet song.`));
  lesson(s, pick<LessonKey>(['friendship', 'fun']));
}

/** The family dog runs off; chase, find, bath, lesson about the gate. */
function arcRunaway(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, para, him, his } = t;
  const pet = makePet(s);
  const chase = pick(['a squirrel', 'a butterfly', 'a ball', 'a cat', 'a rabbit']);
  const found = pick([
    { where: 'by the pond, covered in mud from nose to tail', after: 'gave the dog a bath. There were bubbles everywhere' },
    { where: `in ${pick(NEIGHBORS)[0]}'s garden, digging a hole`, after: 'helped to fill the hole back in' },
    { where: 'under a bush, fast asleep', after: 'carried the sleepy dog home' },
    { where: 'at the bakery, sitting by the door and sniffing the bread', after: 'shared a little treat from the bakery' },
  ]);
  const isDog = pet.sp!.n === 'puppy';
  const word = isDog ? 'dog' : 'cat';
  intro(s);
  add(`${capFirst(his(h))} best friend was a ${pick(['playful', 'fluffy', 'little', 'naughty', 'curious'])} ${word} named ${pet.name}.`);
  pet.introduced = true;
  para();
  const slip = t.int(0, 2);
  add(`${when(t)}, ${N(h)} ${['forgot to close the gate', 'left the front door open', 'let go of the leash'][slip]}.`);
  add(`${N(pet)} saw ${chase} and ran off after it!`);
  say(h, `${pet.name}! Come back!`, 'scared');
  add(`But ${N(pet)} did not stop.`);
  para();
  add(`${N(h)} and ${N(s.parent)} looked everywhere.`);
  addAny(
    () => `They called and called. They looked up the street and down the street.`,
    () => `They asked everyone they met, "Have you seen a ${word}?"`,
  );
  add(`At last, they found ${N(pet)} ${found.where.replace('covered in mud', isDog ? 'covered in mud' : 'wet and muddy')}.`);
  add(`${N(h)} hugged ${N(pet)} tight.`);
  say(h, pick([`I was so worried about you, ${pet.name}!`, `Never run away again, ${pet.name}!`]), 'happy');
  add(`When they got home, they ${found.after.replace('the dog', 'the ' + word)}.`);
  addAny(
    () => `From then on, ${N(h)} always ${['closed the gate', 'checked the door', 'held the leash tight'][slip]}.`,
    () => `${N(h)} learned to always ${['close the gate', 'check the door', 'hold the leash tight'][slip]}, because ${pet.name} was too curious to stay home by ${him(pet)}self.`,
    () => `That night, ${N(pet)} slept at the end of ${poss(h.name)} bed, clean and happy and home.`,
  );
}

/** A favourite toy breaks; a grown-up fixes it with the hero's help. */
function arcFix(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, his } = t;
  const it = makeItem(t, 'fix');
  const p = s.parent;
  const soft = ['teddy bear', 'doll', 'stuffed bunny'].includes(it.n);
  const part = ['toy car', 'toy train', 'wagon'].includes(it.n) ? 'wheels' : it.n === 'toy boat' ? 'sails' : it.n === 'music box' ? 'handles' : it.n === 'toy horse' ? 'legs' : 'arms';
  const broke = pick(soft ? [`one of its arms came off`, `it got a big rip down the side`, `one of its button eyes fell off`] : [`one of its ${part} came off`, `it fell off the table and cracked`, `a piece of it broke off`, it.n === 'music box' ? 'it stopped playing its song' : 'it stopped working']);
  intro(s);
  add(`${capFirst(his(h))} favorite toy was ${it.a}.`);
  para();
  add(`${when(t)}, ${N(h)} was playing with it ${pick(['too roughly', 'on the stairs', 'outside', 'on the kitchen table'])}, and ${broke}.`);
  say(h, pick(['Oh no! My ' + it.n + ' is broken!', 'It\'s ruined!']), 'sad');
  add(SAD(t, h));
  para();
  add(`${N(h)} took the ${it.n} to ${N(p)}.`);
  say(p, pick(["Let's see what we can do.", 'Don\'t worry. I think we can fix it.', 'Broken things can often be fixed.']), 'kind');
  add(`${N(p)} got out ${soft ? pick(['a needle and thread', 'a sewing box']) : pick(['some glue', 'a little screwdriver', 'some strong tape', 'a toolbox'])}.`);
  addAny(
    () => `${N(h)} held the pieces while ${N(p)} worked carefully.`,
    () => `${N(p)} showed ${N(h)} how to do it, and ${N(h)} helped.`,
  );
  maybe(0.5, () => add(`They had to wait for ${pick(['the glue to dry', 'a whole hour', 'a long time'])}. ${N(h)} waited patiently.`));
  addAny(
    () => `At last, the ${it.n} was as good as new. Well, almost!`,
    () => `When they were done, the ${it.n} ${it.n === 'music box' ? 'played its song again' : 'looked almost like new'}.`,
    () => `It took a long time, but at last the ${it.n} was fixed.`,
  );
  maybe(0.5, () => add(`It had a little ${pick(['scar', 'patch', 'bump'])} now, but ${N(h)} loved it even more.`));
  say(h, `Thank you, ${call(p)}!`, 'happy');
  add(`After that, ${N(h)} was very gentle with ${his(h)} ${it.n}.`);
  lesson(s, 'gentle');
}

/** A little dragon who can't breathe fire; its odd gift helps at a party. */
function arcDragon(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, maybe, para, he, his } = t;
  const odd = pick([
    { what: 'bubbles', how: 'only soap bubbles came out', need: ['At the party, a baby bear would not stop crying.', 'A tiny rabbit at the party was sad because her balloon had popped.'], save: [`${N(h)} blew the biggest bubbles anyone had ever seen. They floated and shimmered, and soon the little one was laughing`, `${N(h)} filled the air with a hundred shiny bubbles. Everyone laughed and tried to catch them`] },
    { what: 'warm air', how: 'only a puff of warm air came out', need: ['It was a freezing night, and all the animals were shivering.', 'Snow began to fall, and the little animals were cold.'], save: [`${N(h)} blew warm air on everyone until they were cozy and warm`, `${N(h)} sat in the middle of the animals and breathed out slowly. Soon everyone was warm as toast`] },
    { what: 'sparkles', how: 'only tiny sparkles came out', need: ['At the party, the lights went out, and it was very dark.', 'The lanterns went out, and nobody could see the way home.'], save: [`${N(h)} blew a cloud of sparkles into the dark sky. It looked like a thousand little stars`, `${N(h)} blew sparkles along the path, and everyone could see the way`] },
    { what: 'smoke rings', how: 'only little smoke rings came out', need: ['The party games were over, and everyone was bored.', 'It was a long, dull evening, and nobody knew what to do.'], save: [`${N(h)} blew smoke rings in the shape of hearts and stars, and everyone cheered`, `${N(h)} blew rings, and the little animals took turns jumping through them`] },
    { what: 'cool mist', how: 'only a cool mist came out', need: ['It was the hottest day of the summer, and everyone was tired and thirsty.', 'The flowers in the meadow were drooping in the heat.'], save: [`${N(h)} blew a cool mist over everyone. It felt like a soft summer rain`, `${N(h)} blew cool mist over the flowers, and they lifted their heads again`] },
  ]);
  intro(s);
  addAny(
    () => `All the other dragons could breathe fire. But when ${N(h)} tried, ${odd.how}.`,
    () => `${N(h)} had a problem. Dragons are supposed to breathe fire, but whenever ${he(h)} tried, ${odd.how}.`,
    () => `${S(h)} tried every day to breathe fire like a real dragon. ${capFirst(he(h))} huffed and puffed, but ${odd.how}.`,
  );
  addAny(
    () => `The other dragons laughed. "Whoever heard of a dragon with ${odd.what}?" they said.`,
    () => `Some of the big dragons pointed and giggled.`,
    () => `"That is not how a dragon should be," said an old dragon with a frown.`,
  );
  add(SAD(t, h));
  para();
  addAny(
    () => `${when(t, odd.what === 'cool mist' ? 'sunny' : 'night')}, there was a big party ${s.place.at}.`,
    () => `${when(t, odd.what === 'cool mist' ? 'sunny' : 'night')}, all the animals gathered ${s.place.at} for a celebration.`,
  );
  add(pick(odd.need));
  maybe(0.8, () => say(makeFriend(s, 'new', 'animal'), pick(['What can we do?', 'Can anyone help?', 'Oh dear, oh dear!', 'Is there anything we can do?']), 'worried'));
  addAny(
    () => `${N(h)} stepped forward. ${capFirst(he(h))} took a deep breath.`,
    () => `${N(h)} was shy, but ${he(h)} wanted to help.`,
    () => `${N(h)} had an idea. Maybe ${his(h)} funny breath could help!`,
  );
  add(`${pick(odd.save)}.`);
  para();
  addAny(
    () => `"Three cheers for ${h.name}!" shouted the animals.`,
    () => `Everyone clapped and cheered for ${N(h)}.`,
    () => `"Hooray for ${h.name}!" the animals cried.`,
  );
  addAny(
    () => `Even the other dragons said, "That was amazing!"`,
    () => `The dragons who had laughed came over to say sorry.`,
    () => `One of the big dragons said, "I wish I could do that!"`,
  );
  addAny(
    () => `${N(h)} smiled a big dragon smile.`,
    () => `${N(h)} felt proud of ${his(h)} ${odd.what} for the very first time.`,
  );
  lesson(s, 'yourself');
}

/** Wishes on a star; something kind happens. */
function arcWish(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, his } = t;
  const p = s.parent;
  type Wish = { wish: string; pre?: string; come: () => void };
  const wishes: Wish[] = [
    { wish: 'a friend to play with', pre: `${h.name} had just moved to a new ${h.kind === 'child' ? 'town' : 'home'} and did not know anyone yet.`, come: () => { const f = makeFriend(s, 'new'); add(`The next morning, ${N(f)} came to live next door.`); say(f, pick(['Hello! Do you want to play?', 'Hi! I am new here too. Will you be my friend?']), 'shy'); add(`${N(h)} smiled. ${capFirst(his(h))} wish had come true!`); } },
    { wish: 'a sunny day for the picnic', pre: `The next day was the big picnic, but it had been raining all week.`, come: () => { add(`The next morning, the sun was shining and the sky was bright blue.`); add(`${N(h)} had the best picnic ever.`); } },
    { wish: `${poss(p.name)} cold to go away`, pre: `${p.name} had a bad cold and had been coughing all day.`, come: () => { add(`${N(h)} made ${N(p)} a cup of tea and a get-well card every day.`); add(`Soon ${N(p)} felt much better. "It must have been your wish," ${he(p)} said with a wink.`); } },
    { wish: 'to fly up to the stars', come: () => { add(`That night, ${N(h)} dreamed ${he(h)} was flying high above the rooftops, all the way to the stars.`); add(`The stars twinkled and said hello.`); add(`When ${he(h)} woke up, ${he(h)} was back in bed, but ${he(h)} was smiling.`); } },
    { wish: `${poss(p.name)} lost ring to be found`, pre: `${p.name} had lost a special ring and was very sad.`, come: () => { add(`The next day, ${N(h)} looked everywhere. At last, ${he(h)} found the ring in the garden, shining in the grass.`); add(`${N(p)} hugged ${N(h)} tight. "You are my lucky star," ${he(p)} said.`); } },
    { wish: 'the little bird with the hurt wing to get better', pre: `That afternoon, ${h.name} had found a little bird with a hurt wing and put it in a box with a soft cloth.`, come: () => { add(`Every day, ${N(h)} gave the little bird water and seeds.`); add(`A week later, the bird flapped its wings and flew up into the sky.`); add(`${N(h)} waved until it was just a dot.`); } },
  ];
  const w = pick(wishes);
  intro(s);
  if (w.pre !== undefined) add(w.pre);
  para();
  addAny(
    () => `${when(t, 'night')}, ${N(h)} ${h.kind === 'child' ? 'looked out of ' + his(h) + ' window at the sky' : 'sat on a hill and looked up at the sky'}.`,
    () => `${when(t, 'night')}, ${S(h)} could not sleep, so ${he(h)} ${h.kind === 'child' ? 'went to the window' : 'went outside'} to look at the stars.`,
  );
  add(weatherLine(t, 'night'));
  addAny(
    () => `Suddenly, a star shot across the sky!`,
    () => `Then ${he(h)} saw something amazing. A shooting star zoomed across the sky, leaving a bright silver tail.`,
  );
  if (t.chance(0.5)) say(p, 'Quick! Make a wish!', 'excited');
  else add(`${capFirst(he(h))} remembered that you can make a wish on a shooting star.`);
  add(`${S(h)} closed ${his(h)} eyes tight and wished for ${w.wish}.`);
  maybe(0.5, () => add(`${capFirst(he(h))} did not tell anyone, because then a wish might not come true.`));
  para();
  w.come();
}

/** Makes a gift by hand; worries it isn't enough; it is loved. */
function arcGift(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const who: Char = t.chance(0.5) ? s.parent : makeFriend(s, 'known');
  const gift = pick([
    { what: 'a card', make: 'folded a piece of paper and drew a big red heart on the front. Inside, ' + he(h) + ' wrote, "I love you."' },
    { what: 'a necklace', make: 'put colorful beads on a string, one by one' },
    { what: 'a crown of flowers', make: 'picked daisies from the garden and tied them together in a circle' },
    { what: 'a drawing', make: 'drew a picture of the two of them holding hands under a rainbow' },
    { what: 'a little clay bowl', make: 'pressed and rolled the clay and painted it blue' },
    { what: 'a song', make: 'practiced a little song, over and over, until ' + he(h) + ' knew every word' },
    { what: 'a box of cookies', make: 'helped to bake cookies and put them in a box with a bow' },
  ]);
  intro(s);
  if (who !== s.parent) introduceFriend(s, who);
  para();
  add(`${when(t)}, ${N(h)} remembered that it was almost ${poss(who.name)} birthday.`);
  add(`${capFirst(he(h))} wanted to give ${him(who)} a present, but ${he(h)} had no money.`);
  add(`Then ${he(h)} had an idea. ${capFirst(he(h))} would make ${gift.what}!`);
  add(`${N(h)} ${gift.make}${gift.make.endsWith('"') ? '' : '.'}`);
  addAny(
    () => `But when it was done, ${N(h)} was worried. "What if it is not good enough?" ${he(h)} thought.`,
    () => `It was not perfect, and ${N(h)} hoped that it would be enough.`,
  );
  para();
  add(`On the birthday, ${N(h)} gave ${N(who)} the present.`);
  addAny(
    () => `${N(who)} looked at it for a long time. Then ${his(who)} eyes filled with happy tears.`,
    () => `${N(who)} smiled the biggest smile.`,
  );
  say(who, pick(['This is the best present I have ever had!', `You made this for me? Thank you, ${h.name}!`, 'I will keep it forever.']), 'happy');
  maybe(0.6, () => add(`${N(h)} felt warm all over.`));
  lesson(s, 'thanks', who.kind === 'adult' ? who : undefined);
}

/** Sick in bed and missing out; a friend cheers them up; returning the favour. */
function arcSick(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he } = t;
  const f = makeFriend(s, 'known', undefined, true);
  const miss = pick(["a friend's birthday party", 'the school trip', 'the big race', 'the puppet show', 'the trip to the beach', 'the class picnic']);
  intro(s);
  para();
  add(`${pick(WHEN.any)}, ${N(h)} woke up with a ${pick(['runny nose', 'sore throat', 'cough', 'fever'])}.`);
  say(s.parent, 'You need to stay in bed today.', 'kind');
  add(`But today was ${miss}! ${N(h)} was very sad.`);
  add(`${capFirst(he(h))} lay in bed and ${pick(['looked at the ceiling', 'listened to the birds outside', 'counted the flowers on the curtains', 'read the same book three times'])}. ${pick(['It was so boring.', 'The day felt very long.', 'Every minute felt like an hour.'])}`);
  para();
  add(`In the afternoon, there was a knock at the ${pick(['door', 'window'])}. It was ${N(f)}!`);
  addAny(
    () => `${capFirst(he(f))} had made ${N(h)} a get-well card with a funny drawing on it.`,
    () => `${capFirst(he(f))} had brought ${pick(['a jar of soup', 'some oranges', 'a book of jokes', 'a new puzzle'])}.`,
  );
  say(f, pick(['I missed you today!', 'It was not the same without you.', 'Get well soon!']), 'kind');
  add(`${N(f)} ${pick(['told jokes until ' + N(h) + ' laughed', 'read a story out loud', 'told ' + N(h) + ' everything that had happened'])}.`);
  add(`${N(h)} felt much better already.`);
  para();
  add(`A few days later, ${N(h)} was well again.`);
  maybe(0.7, () => add(`And when ${N(f)} got a cold the next week, ${N(h)} knew just what to do. ${capFirst(he(h))} made a card and went to visit.`));
  lesson(s, pick<LessonKey>(['kind', 'friendship']));
}

/** An animal gathers food for winter; a friend who played all summer is helped. */
function arcWinter(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, maybe, para, he, his } = t;
  const f = makeFriend(s, 'known', 'animal');
  const food = pick(h.sp!.food);
  const them = food.endsWith('s') ? 'them' : 'it';
  intro(s);
  para();
  addAny(
    () => `All summer long, ${N(h)} worked hard. ${capFirst(he(h))} gathered ${food} and stored ${them} in ${his(h)} home for the winter.`,
    () => `Every day that summer, ${S(h)} collected ${food}. ${capFirst(he(h))} carried ${them} home, one load at a time.`,
    () => `${N(h)} knew that winter would come. So all summer, ${he(h)} filled ${his(h)} home with ${food}.`,
  );
  addAny(
    () => `${N(f)} did not work. ${capFirst(he(f))} played and sang and slept in the sun.`,
    () => `But ${N(f)} only wanted to play. ${capFirst(he(f))} danced in the meadow all day long.`,
    () => `${N(f)} laughed at ${N(h)} for working so hard on such sunny days.`,
  );
  say(f, pick([`Come and play, ${h.name}! Winter is far away!`, `Why work when the sun is shining, ${h.name}?`, `You work too much! Come and have fun!`]), 'happy');
  say(h, pick(['I will play later. First I must get ready for winter.', 'Winter will come soon. You should get ready too.', 'I like to play too, but winter is coming.']), 'reply');
  para();
  addAny(
    () => `Then winter came. ${weatherLine(t, 'snowy')}`,
    () => `Soon the days grew short and cold. ${weatherLine(t, 'snowy')}`,
  );
  add(`${N(h)} was warm and cozy at home. But ${N(f)} was cold and hungry.`);
  addAny(
    () => `${capFirst(he(f))} knocked on ${poss(h.name)} door.`,
    () => `One snowy evening, there was a small knock at ${poss(h.name)} door. It was ${N(f)}.`,
  );
  say(f, pick(['I have nothing to eat. Can you help me?', 'I should have listened to you. I am so hungry.', 'I am sorry I laughed at you. Could you spare a little food?']), 'sad');
  addAny(
    () => `${N(h)} did not say, "I told you so." ${capFirst(he(h))} opened the door wide.`,
    () => `${N(h)} smiled and let ${N(f)} in.`,
  );
  say(h, pick(['Come in! There is enough for both of us.', "Come in out of the cold. Let's share.", 'Of course! Friends help each other.']), 'kind');
  addAny(
    () => `They ate together by the warm fire and told stories all winter long.`,
    () => `All winter, they shared the ${food} and kept each other company.`,
  );
  maybe(0.7, () => add(`The next summer, ${N(f)} helped ${N(h)} gather food, and they still had time to play.`));
  lesson(s, 'kind');
}

/** A race; the hero stops to help a friend who falls. */
function arcRace(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const f = makeFriend(s, 'known');
  let place = placeFor(t, h, 'open');
  if (place.key === 'backyard') place = placeByKey('park');
  s.place = place;
  const race = pick(['a big race', 'a running race', 'a sack race', 'the spring race', 'a race to the old oak tree']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, there was ${race} ${place.at}.`,
    () => `${when(t)}, everyone gathered ${place.at} for ${race}.`,
  );
  addAny(
    () => `${N(h)} ${pick(['had practiced every day', 'really wanted to win', 'had been waiting for this day all year'])}.`,
    () => `${S(h)} wanted to win more than anything.`,
  );
  say(h, pick(['I am going to win!', 'I will run faster than everyone!', 'Watch me go!']), 'excited');
  add(`"Ready, set, go!" ${pick(['shouted the teacher', 'called the old owl', 'shouted a big man with a whistle', 'called the judge'])}.`);
  para();
  addAny(
    () => `${N(h)} ran as fast as ${he(h)} could. ${capFirst(he(h))} was in front! ${capFirst(he(h))} could see the finish line.`,
    () => `${N(h)} zoomed ahead of everyone. The finish line was getting closer and closer.`,
  );
  addAny(
    () => `But then ${he(h)} heard a cry behind ${him(h)}. ${N(f)} had tripped and fallen down.`,
    () => `Suddenly, ${he(h)} heard a thump. ${N(f)} had fallen over a stone and hurt ${his(f)} knee.`,
  );
  addAny(
    () => `${N(h)} stopped. ${capFirst(he(h))} wanted to win, but ${his(h)} friend was hurt.`,
    () => `${N(h)} looked at the finish line. Then ${he(h)} looked at ${N(f)}.`,
    () => `${N(h)} did not even stop to think.`,
  );
  add(`${capFirst(he(h))} turned around and ran back.`);
  say(h, pick(['Are you okay? Let me help you up.', 'Come on, we can finish together.', 'Lean on me.']), 'kind');
  addAny(
    () => `${N(h)} helped ${N(f)} up, and they walked to the finish line side by side.`,
    () => `Slowly, they walked the rest of the way together.`,
  );
  para();
  addAny(
    () => `They came last. But everyone was clapping and cheering for them!`,
    () => `All the others had finished long ago. But when ${N(h)} and ${N(f)} crossed the line, everyone cheered the loudest.`,
  );
  maybe(0.6, () => add(`At the end, ${N(h)} got a special ribbon. It said, "${pick(['Kindest Runner', 'Best Friend', 'Big Heart'])}."`));
  say(f, pick([`Thank you, ${h.name}. You are a true friend.`, `You could have won, but you stopped for me.`]), 'happy');
  addAny(
    () => `${N(h)} felt even better than if ${he(h)} had won.`,
    () => `${N(h)} did not win the race, but ${he(h)} felt like a winner.`,
  );
  lesson(s, 'kind');
}

/** A new baby arrives; jealousy; becoming a proud big brother or sister. */
function arcBaby(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const bg: Gender = t.chance(0.5) ? 'm' : 'f';
  const bname = freshName(t, s.names, bg === 'm' ? BOYS : GIRLS);
  const sib = bg === 'm' ? 'brother' : 'sister';
  const big = h.g === 'm' ? 'brother' : 'sister';
  const baby: Char = { name: bname, first: `a new baby ${sib} named ${bname}`, introduced: false, g: bg, kind: 'child' };
  const p: Char = t.chance(0.6) ? { name: 'Mom', introduced: true, g: 'f', kind: 'adult' } : { name: 'Dad', introduced: true, g: 'm', kind: 'adult' };
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(h)} got ${N(baby)}.`,
    () => `${when(t)}, Mom and Dad came home from the hospital with ${N(baby)}.`,
    () => `For months, ${N(h)} had waited. Then, ${when(t).replace(/^O/, 'o')}, ${he(h)} finally met ${N(baby)}.`,
  );
  addAny(
    () => `Everyone came to see the baby. Everyone said, "Oh, how sweet!"`,
    () => `Aunts, uncles, and neighbors came to visit. They all wanted to hold the baby.`,
    () => `The baby was very small and very pink, and everyone wanted to see ${him(baby)}.`,
  );
  addAny(
    () => `But nobody looked at ${N(h)}.`,
    () => `Nobody asked ${N(h)} to play.`,
    () => `${N(h)} stood in the corner, and nobody seemed to notice.`,
  );
  addAny(
    () => `${N(baby)} cried a lot, and ${N(p)} was always busy.`,
    () => `${N(p)} did not have time to play anymore.`,
    () => `${N(baby)} needed to be fed, and rocked, and changed, all day and all night.`,
  );
  say(h, pick(['Nobody cares about me anymore.', 'I wish we did not have a baby.', 'Babies are boring. All they do is cry.']), 'sad');
  para();
  addAny(
    () => `${N(p)} heard and came to sit with ${N(h)}.`,
    () => `That night, ${N(p)} came to ${poss(h.name)} room and sat on the bed.`,
  );
  say(p, pick([`I love you just as much as always. And the baby needs a big ${big} like you.`, 'You are very important. Do you want to help me with the baby?', `Do you know what? When you were a baby, you cried a lot too. And look at you now!`]), 'kind');
  addAny(
    () => `So ${N(h)} helped. ${capFirst(he(h))} ${pick(['sang to the baby', 'brought a clean diaper', 'showed the baby ' + his(h) + ' toys', 'made funny faces', 'rocked the cradle gently'])}.`,
    () => `The next day, ${S(h)} held the baby very carefully on ${his(h)} lap.`,
  );
  addAny(
    () => `Then something amazing happened. ${N(baby)} looked right at ${N(h)} and smiled!`,
    () => `Then ${N(baby)} grabbed ${poss(h.name)} finger with a tiny hand and held on tight.`,
    () => `${N(baby)} stopped crying and made a happy little sound.`,
  );
  say(h, pick([`${call(p)}, look! ${capFirst(PR[bg].he)} likes me!`, `${capFirst(PR[bg].he)} likes me!`, `I think I am ${poss(bname)} favorite.`]), 'excited');
  para();
  add(`From then on, ${N(h)} was ${pick(['the best big', 'a proud big', 'a very helpful big'])} ${big}.`);
  maybe(0.6, () => addAny(
    () => `And when ${N(baby)} was older, ${he(baby)} followed ${N(h)} everywhere.`,
    () => `${capFirst(he(h))} read stories to ${N(baby)} every night.`,
  ));
}

/** A lemonade (or cookie, or flower) stand to raise money; slow start; success. */
function arcLemonade(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he } = t;
  const f = makeFriend(s, 'known');
  const goal = pick(['a new ball for the whole street', 'food for the animal shelter', 'a present for ' + poss(s.parent.name) + ' birthday', 'new books for the school library', 'seeds for the town garden', 'a bird feeder for the park', 'a new swing for the playground']);
  const stand = pick([
    { what: 'lemonade', idea: ['Let\'s sell lemonade!', 'I know! A lemonade stand!'], make: 'They squeezed lemons, stirred in sugar, and filled a big jug with ice.', sign: 'Cold lemonade!', gone: 'the jug was empty' },
    { what: 'cookies', idea: ['Let\'s sell cookies!', 'We could bake cookies and sell them!'], make: `With help from ${s.parent.name}, they baked three trays of cookies and put them on a big plate.`, sign: 'Fresh cookies!', gone: 'the plate was empty' },
    { what: 'flowers', idea: ['Let\'s sell flowers from the garden!', 'People love flowers. Let\'s sell some!'], make: 'They picked flowers from the garden and tied them into little bunches with string.', sign: 'Pretty flowers!', gone: 'every bunch of flowers was gone' },
    { what: 'apple juice', idea: ['Let\'s sell apple juice!', 'We can make apple juice and sell it!'], make: 'They washed the apples, pressed out the juice, and poured it into a big glass jug.', sign: 'Sweet apple juice!', gone: 'the jug was empty' },
  ]);
  const price = pick(['ten cents', 'five cents', 'one coin', 'twenty cents']);
  intro(s);
  para();
  addAny(
    () => `${when(t, 'sunny')}, ${N(h)} and ${N(f)} wanted to raise money for ${goal}.`,
    () => `${when(t, 'sunny')}, ${N(h)} had a plan. ${capFirst(he(h))} and ${N(f)} wanted to buy ${goal}, but they needed money.`,
  );
  say(f, pick(stand.idea), 'excited');
  add(stand.make);
  addAny(
    () => `They made a sign that said, "${stand.sign} Only ${price}!"`,
    () => `${N(h)} painted a big sign: "${stand.sign} Only ${price}!"`,
    () => `They set up a little table by the road with a sign that said, "${stand.sign}"`,
  );
  para();
  addAny(
    () => `At first, nobody came.`,
    () => `But at first, no one stopped.`,
    () => `They waited, but the street was empty.`,
  );
  addAny(
    () => `${N(h)} and ${N(f)} waited and waited.${stand.what.includes('juice') || stand.what === 'lemonade' ? ' The ice began to melt.' : ''}`,
    () => `An hour went by. Not one person stopped.`,
    () => `A car drove past without slowing down. Then a bike went by, very fast.`,
  );
  say(h, pick([`Maybe nobody likes ${stand.what}.`, 'This is not working.', 'We will never sell anything.']), 'sad');
  say(f, pick(["Let's not give up yet.", 'We just need people to notice us!', "Don't give up! I have an idea."]), 'kind');
  addAny(
    () => `So they ${pick(['sang a silly song about ' + stand.what, 'waved at everyone who walked by', 'made a bigger sign with a smiling sun on it', 'called out, "Come and get it!"'])}.`,
    () => `${N(f)} ${pick(['wore a funny hat', 'juggled three oranges', 'danced next to the table'])}, and people began to look.`,
  );
  addAny(
    () => `Then a ${pick(['man with a dog', 'woman on a bike', 'mail carrier', 'family with three children', 'lady with a big umbrella'])} stopped. Then another, and another!`,
    () => `Soon a ${pick(['teacher', 'baker', 'bus driver', 'grandmother'])} came by and bought some. After that, people kept coming.`,
    () => `Before long, there was a line of people waiting.`,
  );
  para();
  addAny(
    () => `By the end of the day, ${stand.gone}, and the jar was full of coins.`,
    () => `When the sun went down, ${stand.gone}. They counted the coins. There was enough!`,
  );
  addAny(
    () => `They used the money to buy ${goal}.`,
    () => `The next day, they bought ${goal}.`,
  );
  maybe(0.5, () => add(`And they saved ${stand.what === 'flowers' ? 'the prettiest bunch' : 'the very last ' + (stand.what === 'cookies' ? 'cookie' : 'cup')} for ${N(s.parent)}.`));
  addAny(
    () => `${N(h)} and ${N(f)} gave each other a high five.`,
    () => `${N(h)} and ${N(f)} were tired, but very happy.`,
    () => `It had been a long day, but a very good one.`,
  );
  maybe(0.7, () => lesson(s, pick<LessonKey>(['tryAgain', 'teamwork'])));
}

/** A night camping out: a strange noise turns out to be harmless; stars. */
function arcCamping(s: St): void {
  const { t, h } = s;
  const { S, N, say, add, addAny, pick, maybe, para, he, his } = t;
  const p = s.parent;
  const where = h.kind === 'child' ? pick(['in the backyard', 'by the lake', 'in the woods by the old farm', 'on the top of the big hill']) : pick(['at the edge of the forest', 'in the middle of the meadow', 'by the pond']);
  const noise = pick([
    { sound: 'Crunch, crunch, crunch!', was: 'a hedgehog looking for beetles in the leaves' },
    { sound: 'Hoo-hoo! Hoo-hoo!', was: 'an owl sitting on a branch right above the tent' },
    { sound: 'Scritch, scratch!', was: 'a raccoon trying to open their bag of marshmallows' },
    { sound: 'Plop! Plop! Plop!', was: 'rain drops falling from the leaves onto the tent' },
    { sound: 'Rustle, rustle!', was: 'a little mouse with its nose in a cookie crumb' },
  ]);
  intro(s);
  para();
  addAny(
    () => `${when(t, 'warm')}, ${N(p)} said, "Tonight we are going to sleep in a tent ${where}!"`,
    () => `${when(t, 'warm')}, ${N(h)} and ${N(p)} went camping ${where}.`,
  );
  say(h, pick(['Hooray! A real camping trip!', 'Can we make a fire?', 'I will carry the flashlight!']), 'excited');
  addAny(
    () => `They put up the tent together. ${N(h)} held the poles while ${N(p)} pulled the ropes tight.`,
    () => `First they put up a little green tent. Then they gathered sticks for a small fire.`,
  );
  addAny(
    () => `They toasted marshmallows until they were golden and gooey.`,
    () => `They ate soup from tin cups and told funny stories.`,
    () => `They roasted corn and listened to the crickets sing.`,
  );
  para();
  add(`When it was dark, they crawled into their sleeping bags.`);
  add(`Then ${N(h)} heard a sound outside. ${noise.sound}`);
  say(h, pick([`${call(p)}, what was that?`, 'Is it a monster?', 'Did you hear that?']), 'scared');
  addAny(
    () => `${N(p)} turned on the flashlight and looked out of the tent.`,
    () => `${N(p)} smiled, took the flashlight, and opened the tent very slowly.`,
  );
  add(`It was only ${noise.was}!`);
  addAny(
    () => `${N(h)} laughed so hard that ${he(h)} had to hold ${his(h)} tummy.`,
    () => `${N(h)} let out a big breath and giggled.`,
  );
  para();
  addAny(
    () => `Then ${N(p)} pointed at the sky. There were more stars than ${N(h)} had ever seen.`,
    () => `Before they went back to sleep, they looked up at the sky. It was full of stars.`,
  );
  maybe(0.6, () => add(`${N(p)} showed ${N(h)} ${pick(['the Big Dipper', 'the brightest star', 'a star that looked like it was winking', 'the Milky Way'])}.`));
  addAny(
    () => `${N(h)} fell asleep listening to the night, and ${he(h)} was not scared at all.`,
    () => `That night, ${S(h)} slept better than ever, all snug in ${his(h)} sleeping bag.`,
  );
  maybe(0.5, () => lesson(s, 'brave'));
}

/** Fishing with a grandparent: waiting, a boot, a fish, letting it go. */
function arcFishing(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, his } = t;
  const g: Char = t.chance(0.5) ? { name: 'Grandpa', introduced: true, g: 'm', kind: 'adult' } : { name: 'Grandma', introduced: true, g: 'f', kind: 'adult' };
  const place = placeByKey(pick(['lake', 'river', 'pond']));
  s.place = place;
  const junk = pick(['an old boot', 'a tangle of weeds', 'a soggy hat', 'a stick']);
  const fish = pick(['a big silver fish', 'a little fish with shiny scales', 'a fat brown fish', 'a fish with a rainbow on its side']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(g)} took ${N(h)} fishing ${place.at}.`,
    () => `${when(t)}, ${N(h)} went fishing with ${N(g)} for the very first time.`,
  );
  addAny(
    () => `They sat on the ${pick(['old wooden dock', 'grassy bank', 'big flat rock'])} and threw their lines into the water.`,
    () => `${N(g)} showed ${N(h)} how to hold the rod and throw the line far out.`,
  );
  addAny(
    () => `Then they waited. And waited. And waited.`,
    () => `The water was very still. Nothing happened for a long time.`,
  );
  say(h, pick(['When will we catch a fish?', 'This is taking forever!', 'Are there even any fish in here?']), 'plain');
  say(g, pick(['Fishing is about being patient. Listen to the birds while we wait.', 'The fish will come. Good things take time.', 'Shh. The fish are listening.']), 'kind');
  para();
  add(`Suddenly, ${poss(h.name)} line pulled! ${capFirst(he(h))} reeled it in as fast as ${he(h)} could.`);
  add(`But it was only ${junk}!`);
  addAny(
    () => `${N(g)} laughed so hard that ${his(g)} hat fell off.`,
    () => `${N(h)} and ${N(g)} both burst out laughing.`,
  );
  add(`${N(h)} tried again. This time, ${he(h)} waited quietly and did not wiggle at all.`);
  add(`Then the line pulled again, harder this time. ${N(h)} held on tight and pulled and pulled.`);
  add(`Out of the water came ${fish}!`);
  say(h, pick(['I caught one! I caught one!', 'Look, look! A real fish!']), 'excited');
  para();
  addAny(
    () => `${N(h)} looked at the fish wiggling in the net. Then ${he(h)} said, "Can we let it go home?"`,
    () => `The fish looked at ${N(h)} with its round eyes. ${N(h)} decided to let it go.`,
  );
  add(`Gently, they put the fish back in the water, and it swam away with a flick of its tail.`);
  addAny(
    () => `On the way home, ${N(h)} held ${poss(g.name)} hand and talked about the fish the whole time.`,
    () => `${N(g)} said it was the best fishing day ${he(g)} had ever had.`,
  );
  maybe(0.6, () => lesson(s, 'patience'));
}

/** Plans a surprise party for a friend; the secret is hard to keep. */
function arcParty(s: St): void {
  const { t, h } = s;
  const { N, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const f = makeFriend(s, 'known');
  const helpers = h.kind === 'child' ? pick(['all of their friends', 'the other children on the street', 'the whole class']) : pick(['all the animals', 'everyone in ' + s.place.the, 'their friends from near and far']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(h)} found out that it was almost ${t.P(f)} birthday.`,
    () => `${N(h)} knew that ${N(f)} would soon have a birthday.`,
  );
  add(`${capFirst(he(h))} decided to plan a surprise party!`);
  addAny(
    () => `${capFirst(he(h))} told ${helpers}, and everyone promised to keep the secret.`,
    () => `${capFirst(he(h))} whispered the plan to ${helpers}. "Shh! Don't tell!"`,
  );
  addAny(
    () => `They made paper chains and colorful balloons. ${N(s.parent)} helped to bake a big ${pick(['chocolate', 'strawberry', 'carrot', 'lemon'])} cake.`,
    () => `They hung up streamers and made a big sign that said, "Happy Birthday, ${f.name}!"`,
  );
  para();
  add(`But keeping a secret was very hard.`);
  addAny(
    () => `The day before the party, ${N(f)} asked, "Why is everyone whispering?"`,
    () => `When ${N(f)} came by, ${N(h)} almost told ${him(f)} about the party and had to cover ${his(h)} mouth.`,
  );
  addAny(
    () => `${N(h)} said, "Oh, no reason!" and quickly changed the subject.`,
    () => `${N(h)} just smiled and talked about the weather.`,
  );
  maybe(0.5, () => add(`${N(f)} looked a little sad. ${capFirst(he(f))} thought everyone had forgotten ${his(f)} birthday.`));
  para();
  add(`On the big day, ${N(h)} asked ${N(f)} to come for a walk.`);
  add(`When they came back, everyone jumped out and shouted, "Surprise!"`);
  addAny(
    () => `${N(f)} was so surprised that ${he(f)} could not speak at first.`,
    () => `${poss(f.name)} mouth fell open. Then ${he(f)} began to laugh.`,
  );
  say(f, pick(['You did all this for me?', 'This is the best birthday ever!', 'I thought you forgot!']), 'excited');
  addAny(
    () => `They ate cake, played games, and danced until it was dark.`,
    () => `There was cake and music and lots of games. Everyone had a wonderful time.`,
  );
  say(f, `Thank you, ${h.name}. You are the best friend in the world.`, 'happy');
  maybe(0.5, () => lesson(s, 'friendship'));
}

/** Moving to a new house; missing the old one; finding good things in the new place. */
function arcMoving(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, maybe, para, he, him, his } = t;
  const p = s.parent;
  const miss = pick(['the big tree in the old garden', 'the little room with the blue walls', 'the swing in the old backyard', 'the neighbors and their friendly dog', 'walking to school with ' + his(h) + ' best friend']);
  const goodThing = pick(['a tree house in the garden', 'a window where you could see the whole town', 'a park right across the street', 'a creek at the end of the street', 'an attic full of old treasures']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(p)} said, "We are moving to a new house."`,
    () => `${N(h)} and ${his(h)} family were moving to a new town.`,
  );
  addAny(
    () => `${N(h)} did not want to go. ${capFirst(he(h))} would miss ${miss}.`,
    () => `${N(h)} felt a big knot in ${his(h)} tummy. What about ${miss}?`,
  );
  say(h, pick(['I don\'t want a new house. I like this one.', 'What if I don\'t like it there?', 'What if nobody wants to be my friend?']), 'sad');
  say(p, pick(['New places can be scary. But they can also be full of good surprises.', 'We will take all the things we love with us, and we will make new memories too.', 'Let\'s wait and see. I think you might like it.']), 'kind');
  para();
  addAny(
    () => `They packed everything into big boxes. ${N(h)} put ${his(h)} favorite toys in a box and wrote ${his(h)} name on it.`,
    () => `On moving day, a big truck came. ${N(h)} watched the men carry the boxes, one by one.`,
  );
  add(`The new house looked big and empty. ${N(h)} did not say a word.`);
  addAny(
    () => `But then ${he(h)} found ${goodThing}!`,
    () => `Then ${N(p)} showed ${him(h)} something: ${goodThing}.`,
  );
  say(h, pick(['Wow! Is this really ours?', 'This is so cool!']), 'excited');
  para();
  const f = makeFriend(s, 'new');
  add(`The next day, ${N(f)} from next door came to say hello.`);
  say(f, pick(['Do you want to play?', 'Hi! I live next door. Do you like games?']), 'shy');
  addAny(
    () => `Soon ${N(h)} and ${N(f)} were playing like old friends.`,
    () => `By the end of the week, ${N(h)} had a new best friend.`,
  );
  addAny(
    () => `That night, ${S(h)} said, "${call(p)}, I think I like our new house."`,
    () => `${N(h)} still missed ${miss}, but now ${he(h)} had new things to love too.`,
  );
  maybe(0.5, () => lesson(s, 'friends'));
}

/** A wobbly tooth comes out at a funny moment. */
function arcTooth(s: St): void {
  const { t, h } = s;
  const { N, S, say, add, addAny, pick, para, he, him, his } = t;
  const p = s.parent;
  const how = pick(['biting into a crunchy apple', 'laughing at a funny joke', 'eating a piece of corn', 'sneezing a very big sneeze', 'brushing ' + his(h) + ' teeth']);
  intro(s);
  para();
  addAny(
    () => `${when(t)}, ${N(h)} felt something strange. One of ${his(h)} front teeth was wobbly!`,
    () => `${N(h)} had a loose tooth. It wiggled every time ${he(h)} touched it with ${his(h)} tongue.`,
  );
  say(h, pick([`${call(p)}, look! My tooth is wiggly!`, 'Is my tooth going to fall out?']), 'excited');
  say(p, pick(['That means you are growing up. A new tooth will grow in its place.', 'Don\'t worry. It will come out when it is ready.']), 'kind');
  addAny(
    () => `For days, ${N(h)} wiggled the tooth. It would not come out.`,
    () => `${N(h)} tried to pull it, but it was not ready yet.`,
  );
  para();
  add(`Then, one day, ${N(h)} was ${how}, and out popped the tooth!`);
  addAny(
    () => `${N(h)} held the tiny white tooth in ${his(h)} hand.`,
    () => `${N(h)} looked in the mirror. There was a little gap where the tooth had been!`,
  );
  say(h, pick(['My tooth came out!', 'I lost my first tooth!']), 'excited');
  addAny(
    () => `${N(p)} gave ${him(h)} a big hug and a little box for the tooth.`,
    () => `${N(p)} clapped and laughed.`,
  );
  para();
  addAny(
    () => `That night, ${S(h)} put the tooth under ${his(h)} pillow.`,
    () => `At bedtime, ${N(h)} put the tooth in a little envelope under the pillow.`,
  );
  addAny(
    () => `In the morning, the tooth was gone. In its place was a shiny coin and a tiny note that said, "Keep smiling!"`,
    () => `When ${he(h)} woke up, there was a shiny coin under the pillow.`,
  );
  addAny(
    () => `${N(h)} smiled a big smile with a gap in it.`,
    () => `${N(h)} ran to show everyone ${his(h)} new smile.`,
  );
}

const ARCS: Arc[] = [
  { name: 'lost', kinds: ['child', 'animal'], run: arcLost },
  { name: 'stuck', kinds: ['child', 'animal'], run: arcStuck },
  { name: 'fear', kinds: ['child', 'animal'], run: arcFear },
  { name: 'share', kinds: ['child', 'animal'], run: arcShare },
  { name: 'build', kinds: ['child', 'animal'], run: arcBuild },
  { name: 'rescue', kinds: ['child'], run: arcRescue },
  { name: 'skill', kinds: ['child', 'animal'], run: arcSkill },
  { name: 'rainy', kinds: ['child'], run: arcRainy },
  { name: 'garden', kinds: ['child'], run: arcGarden },
  { name: 'newFriend', kinds: ['child', 'animal'], run: arcNewFriend },
  { name: 'lostHero', kinds: ['child', 'animal'], run: arcLostHero },
  { name: 'honest', kinds: ['child'], run: arcHonest },
  { name: 'treasure', kinds: ['child', 'animal'], run: arcTreasure },
  { name: 'cook', kinds: ['child'], run: arcCook },
  { name: 'bedtime', kinds: ['child', 'animal'], run: arcBedtime },
  { name: 'trip', kinds: ['child'], run: arcTrip },
  { name: 'quarrel', kinds: ['child', 'animal'], run: arcQuarrel },
  { name: 'yourself', kinds: ['animal'], run: arcYourself },
  { name: 'tidy', kinds: ['child'], run: arcTidy },
  { name: 'snow', kinds: ['child', 'animal'], run: arcSnow },
  { name: 'picnic', kinds: ['child', 'animal'], run: arcPicnic },
  { name: 'neighbor', kinds: ['child'], run: arcNeighbor },
  { name: 'music', kinds: ['child', 'animal'], run: arcMusic },
  { name: 'runaway', kinds: ['child'], run: arcRunaway },
  { name: 'fix', kinds: ['child'], run: arcFix },
  { name: 'dragon', kinds: ['animal'], run: arcDragon, species: 'dragon' },
  { name: 'wish', kinds: ['child', 'animal'], run: arcWish },
  { name: 'gift', kinds: ['child', 'animal'], run: arcGift },
  { name: 'sick', kinds: ['child'], run: arcSick },
  { name: 'winter', kinds: ['animal'], run: arcWinter },
  { name: 'race', kinds: ['child', 'animal'], run: arcRace },
  { name: 'baby', kinds: ['child'], run: arcBaby },
  { name: 'lemonade', kinds: ['child'], run: arcLemonade },
  { name: 'camping', kinds: ['child', 'animal'], run: arcCamping },
  { name: 'fishing', kinds: ['child'], run: arcFishing },
  { name: 'party', kinds: ['child', 'animal'], run: arcParty },
  { name: 'moving', kinds: ['child'], run: arcMoving },
  { name: 'tooth', kinds: ['child'], run: arcTooth },
];
export const ARC_NAMES: readonly string[] = ARCS.map((a) => a.name);

/** Last pass over a whole story: "a"/"an" by the following word. */
function finalize(text: string): string {
  return text.replace(/\b(a|an|A|An) ("?)([A-Za-z][\w-]*)/g, (_m, art: string, q: string, word: string) => {
    const want = articleFor(word);
    const out = art[0] === 'A' ? capFirst(want) : want;
    return `${out} ${q}${word}`;
  });
}

export const MIN_WORDS = 80;
export const MAX_WORDS = 250;
const WORD_RE = /[A-Za-z]+(?:['-][A-Za-z]+)*/g;
export const wordsOf = (text: string): string[] => text.match(WORD_RE) ?? [];

function tell(rng: Rng, arc: Arc): string {
  const t = new Teller(rng);
  const names = new Set<string>();
  const kind = arc.kinds.length === 1 ? arc.kinds[0]! : t.chance(0.6) ? 'child' : 'animal';
  const h = makeHero(t, names, kind);
  if (arc.species !== undefined) h.sp = speciesByName(arc.species);
  const s: St = { t, h, names, parent: makeParent(t, h), place: placeFor(t, h) };
  arc.run(s);
  return finalize(t.text());
}

/** One story from a named arc (for tests and for reading samples). */
export function generateArcStory(name: string, rng: Rng): string {
  const arc = ARCS.find((a) => a.name === name);
  if (arc === undefined) throw new Error(`unknown story arc "${name}" (known: ${ARC_NAMES.join(', ')})`);
  return tell(rng, arc);
}

/** One story of MIN_WORDS..MAX_WORDS words, drawn with `rng` (which it advances). */
export function generateStory(rng: Rng): string {
  let text = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const arc = ARCS[Math.floor(rng() * ARCS.length)]!;
    text = tell(rng, arc);
    const n = wordsOf(text).length;
    if (n >= MIN_WORDS && n <= MAX_WORDS) return text;
  }
  return text;
}

/** `stories` distinct stories, the same list for the same seed. */
export function generateCorpus(opts: { stories: number; seed: number }): string[] {
  const rng = mulberry32(opts.seed);
  const seen = new Set<string>();
  const out: string[] = [];
  let retries = 0;
  while (out.length < opts.stories) {
    const text = generateStory(rng);
    if (seen.has(text)) {
      // Exact repeats are rare; skip them so the model never sees a story twice.
      if (++retries > opts.stories + 1000) throw new Error('generateCorpus: too many duplicate stories; the grammar is too small for this many');
      continue;
    }
    seen.add(text);
    out.push(text);
  }
  return out;
}

export function corpusStats(texts: readonly string[]): { stories: number; words: number; distinct: number; minWords: number; maxWords: number } {
  const vocab = new Set<string>();
  let words = 0;
  let minWords = Infinity;
  let maxWords = 0;
  for (const text of texts) {
    const ws = wordsOf(text);
    words += ws.length;
    minWords = Math.min(minWords, ws.length);
    maxWords = Math.max(maxWords, ws.length);
    for (const w of ws) vocab.add(w.toLowerCase());
  }
  return { stories: texts.length, words, distinct: vocab.size, minWords: texts.length > 0 ? minWords : 0, maxWords };
}

// ---- command line ------------------------------------------------------------------------------

/** About 9-10 M words and ~50 MB of JSONL; takes ~10 s. */
export const DEFAULT_STORIES = 60000;

export const USAGE = 'usage: node --import tsx recipes/default-model/corpus.ts --out FILE.jsonl [--stories N] [--seed S]';

/** Command-line options; null for --help. Throws on anything it does not understand. */
export function parseCorpusArgs(argv: string[]): { out: string; stories: number; seed: number } | null {
  let out: string | undefined;
  let stories = DEFAULT_STORIES;
  let seed = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`corpus: ${a} needs a value`);
      return v;
    };
    const int = (name: string, v: string, min: number): number => {
      if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`corpus: ${name} must be an integer >= ${min}, got "${v}"`);
      return Number(v);
    };
    if (a === '--out') out = val();
    else if (a === '--stories') stories = int('--stories', val(), 1);
    else if (a === '--seed') seed = int('--seed', val(), 0);
    else if (a === '--help' || a === '-h') return null;
    else throw new Error(`corpus: unknown argument "${a}" (expected --out, --stories, --seed)`);
  }
  if (out === undefined) throw new Error('corpus: --out FILE.jsonl is required');
  return { out, stories, seed };
}

/** The command line: writes the JSONL file and returns the summary line (or the usage text). */
export function runCorpusCli(argv: string[]): string {
  let args: ReturnType<typeof parseCorpusArgs>;
  try {
    args = parseCorpusArgs(argv);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
  }
  if (args === null) return USAGE;
  const t0 = Date.now();
  const texts = generateCorpus({ stories: args.stories, seed: args.seed });
  const body = texts.map((text) => JSON.stringify({ text }) + '\n').join('');
  try {
    writeFileSync(args.out, body);
  } catch (e) {
    throw new Error(`corpus: cannot write ${args.out}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const st = corpusStats(texts);
  const mb = (Buffer.byteLength(body) / 1e6).toFixed(1);
  return `wrote ${args.out}: ${st.stories} stories, ${st.words} words (${st.minWords}-${st.maxWords} per story), ${st.distinct} distinct words, ${mb} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    console.log(runCorpusCli(process.argv.slice(2)));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
