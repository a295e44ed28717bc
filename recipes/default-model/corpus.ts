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
//   node --import tsx recipes/default-model/corpus.ts --out corpus.jsonl --stories 40000 --seed 1

import { createWriteStream } from 'node:fs';
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
export const A_BEFORE_VOWEL = new Set(['one', 'once', 'unicorn', 'unicorns', 'uniform', 'unique', 'useful', 'usual', 'ukulele', 'unicycle', 'university', 'eucalyptus', 'european', 'ewe']);
export const AN_BEFORE_CONSONANT = new Set(['hour', 'hours', 'honest', 'honor', 'heir']);

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
  get isnt(): string {
    return this.pl ? "aren't" : "isn't";
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
  /** Mark a character as mentioned without printing (for "they" covering a pair). */
  touch = (...cs: Char[]): void => {
    for (const c of cs) this.note(c);
  };

  add = (s: string): void => {
    let out = s.trim().replace(/\s+/g, ' ');
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
      kind: ['smiled kindly', 'came closer', 'sat down next to ' + (c.kind === 'adult' ? 'the little one' : 'a friend')],
      teach: ['smiled', 'nodded slowly'],
      reply: ['nodded', 'thought for a moment'],
      shy: ['looked down at ' + his(c) + ' feet', 'gave a small smile'],
      plain: ['nodded', 'looked up', 'thought for a moment'],
    };
    let xs = m[mood] ?? m['plain']!;
    if (c.kind === 'animal') xs = xs.filter((x) => !x.includes('arms') && !x.includes('lip'));
    if (mood === 'kind') xs = xs.filter((x) => !x.startsWith('sat down'));
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
function makeFriend(s: St, mode: 'known' | 'new', want?: 'child' | 'animal'): Char {
  const { t, h } = s;
  const kind = want ?? (h.kind === 'child' ? 'child' : 'animal');
  const g: Gender = t.chance(0.5) ? 'm' : 'f';
  if (kind === 'child') {
    const name = freshName(t, s.names, g === 'm' ? BOYS : GIRLS);
    const adj = t.pick(['shy', 'little', 'new', 'quiet', 'friendly', 'smiling', 'tall']);
    const rel = t.pick(['friend', 'friend', 'best friend', 'neighbor', 'cousin', g === 'm' ? 'big brother' : 'big sister', g === 'm' ? 'little brother' : 'little sister']);
    const first = mode === 'new' ? `a ${adj} ${g === 'm' ? 'boy' : 'girl'} named ${name}` : `${his(h)} ${rel} ${name}`;
    return { name, first, introduced: false, g, kind: 'child' };
  }
  const others = SPECIES.filter((x) => x !== h.sp && x.hero !== false && (h.kind !== 'animal' || x.hab.some((k) => h.sp!.hab.includes(k))));
  const species = t.pick(others.length > 0 ? others : HERO_SPECIES);
  if (t.chance(0.3)) {
    const adj = t.pick(species.n === 'owl' || species.n === 'turtle' ? ['wise old', 'kind old'] : ['friendly', 'kind', 'little', 'young', 'cheerful', 'gentle']);
    return { name: `the ${species.n}`, first: `a ${adj} ${species.n}`, introduced: false, g, kind: 'animal', sp: species };
  }
  const name = freshName(t, s.names, PET_NAMES);
  const first = mode === 'new' ? `a ${t.pick(['shy', 'little', 'young', 'friendly'])} ${species.n} named ${name}` : t.pick([`${his(h)} friend ${name} the ${species.n}`, `${name} the ${species.n}`, `${his(h)} friend ${name}, a ${species.n}`]);
  return { name, first, introduced: false, g, kind: 'animal', sp: species };
}

function makePet(s: St): Char {
  const { t } = s;
  const species = speciesByName(t.pick(['puppy', 'puppy', 'kitten']));
  const word = species.n === 'puppy' ? t.pick(['dog', 'puppy']) : t.pick(['cat', 'kitten']);
  const name = freshName(t, s.names, PET_NAMES);
  return { name, first: `${his(s.h)} ${word}, ${name},`, introduced: false, g: t.chance(0.5) ? 'm' : 'f', kind: 'animal', sp: species };
}

function makeItem(t: Teller, tag: string, exclude?: Thing): Item {
  const base = t.pick(things(tag).filter((x) => x !== exclude));
  return new Item(base, t.pick(base.adj));
}

const when = (t: Teller, w: Weather = 'any'): string => t.pick(w === 'any' ? [...WHEN.any, ...WHEN.sunny] : WHEN[w]);
const weatherLine = (t: Teller, w: Weather = 'any'): string => t.pick(WEATHER_LINE[w]);

/** Opening: who the hero is, plus a detail or two. */
function intro(s: St): void {
  const { t, h } = s;
  const adj = t.pick(h.kind === 'child' ? CHILD_ADJ : ANIMAL_ADJ);
  if (h.kind === 'child') {
    const kid = boyGirl(h);
    const home = t.pick(CHILD_HOMES);
    t.addAny(
      () => `Once upon a time, there was a ${adj} ${kid} named ${h.name}.`,
      () => `Once upon a time, there was a ${adj} ${kid} named ${h.name}.`,
      () => `There once was a ${adj} ${kid} called ${h.name}.`,
      () => `${h.name} was a ${adj} ${kid} who lived in ${home}.`,
      () => `In ${t.pick(TOWNS)}, there lived a ${adj} ${kid} named ${h.name}.`,
      () => `${h.name} was a ${NUM[h.age!]}-year-old ${kid}.`,
      () => `Not long ago, there was a ${kid} named ${h.name}.`,
      () => `${h.name} was ${NUM[h.age!]} years old, and ${he(h)} was a very ${adj === 'little' || adj === 'young' ? 'happy' : adj} ${kid}.`,
    );
    t.touch(h);
    const hobby = act(t.pick(CHILD_HOBBIES).replace('Grandma', s.parent.name === 'Grandpa' ? 'Grandpa' : 'Grandma'));
    const look = t.pick(CHILD_LOOKS).replace('{his}', his(h));
    const extras: Thunk[] = [
      () => `${t.S(h)} loved to ${hobby.base}.`,
      () => `More than anything, ${t.S(h)} liked ${hobby.ing}.`,
      () => `${capFirst(his(h))} favorite thing to do was ${hobby.ing}.`,
      () => `${t.S(h)} had ${look} and loved ${hobby.ing}.`,
      () => `${t.S(h)} lived with ${his(h)} family in ${home}.`,
    ];
    t.add(t.any(...extras));
    t.maybe(0.35, () => t.add(t.any(...extras)));
  } else {
    const spc = h.sp!;
    const look = t.pick(spc.looks);
    t.addAny(
      () => `Once upon a time, there was a ${adj} ${spc.n} named ${h.name}.`,
      () => `${h.name} was a ${adj} ${spc.n} with ${look}.`,
      () => `${capFirst(s.place.at)}, there lived a ${adj} ${spc.n} called ${h.name}.`,
      () => `${h.name} the ${spc.n} lived in ${spc.home}.`,
      () => `There once was a ${adj} ${spc.n}. ${capFirst(his(h))} name was ${h.name}.`,
      () => `Far away, ${s.place.at}, lived a ${adj} ${spc.n} named ${h.name}.`,
    );
    t.touch(h);
    const hobby = act(t.pick(spc.fly ? [...ANIMAL_HOBBIES, 'fly high above the trees'] : spc.swim ? [...ANIMAL_HOBBIES, 'swim and splash'] : ANIMAL_HOBBIES));
    const extras: Thunk[] = [
      () => `${t.S(h)} lived in ${spc.home}.`,
      () => `${t.S(h)} had ${t.pick(spc.looks)}.`,
      () => `${capFirst(his(h))} favorite food was ${t.pick(spc.food)}.`,
      () => `${t.S(h)} loved to ${hobby.base}.`,
      () => `Every day, ${t.S(h)} liked to ${act(spc.move).base} around ${s.place.the} and ${hobby.base}.`,
    ];
    t.add(t.any(...extras));
    t.maybe(0.4, () => t.add(t.any(...extras)));
  }
}

const SAD = (t: Teller, c: Char): string =>
  t.any(
    () => `${t.S(c)} felt very sad.`,
    () => `${t.S(c)} was so sad that ${he(c)} wanted to cry.`,
    () => `A big tear rolled down ${t.P(c)} cheek.`,
    () => `${t.S(c)} sat down and sighed.`,
    () => `${t.S(c)} felt sad and a little bit worried.`,
    () => `${t.P(c)} eyes filled with tears.`,
  );
const HAPPY = (t: Teller, c: Char): string =>
  t.any(
    () => `${t.S(c)} was so happy!`,
    () => `${t.S(c)} jumped for joy.`,
    () => `${t.P(c)} face lit up with a big smile.`,
    () => `${t.S(c)} felt warm and happy inside.`,
    () => `${t.S(c)} could not stop smiling.`,
    () => `${t.S(c)} laughed with joy.`,
  );

type LessonKey = 'sharing' | 'tryAgain' | 'brave' | 'honest' | 'patience' | 'kind' | 'askHelp' | 'teamwork' | 'careful' | 'yourself' | 'sorry' | 'listen' | 'thanks' | 'friends' | 'fun';
const LESSONS: Record<LessonKey, { that: string[]; res: ((c: Char) => string)[]; line: string[] }> = {
  sharing: {
    that: ['sharing makes everyone happy', 'it is more fun to play together', 'good friends share what they have', 'sharing is a way of being kind'],
    res: [(c) => `always shared ${his(c)} toys with ${his(c)} friends`, () => 'was happy to share', () => 'never forgot how good it felt to share'],
    line: ['When we share, everyone has more fun.', 'Sharing is caring.', 'Things are more fun when we share them.'],
  },
  tryAgain: {
    that: ['it is good to keep trying', 'you should never give up', 'practice makes hard things easy', 'mistakes help us learn'],
    res: [() => 'never gave up when something was hard', () => 'kept trying, even when things were hard', () => 'knew that practice would help'],
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
    res: [() => 'was quick to say sorry', () => 'remembered that friends are more important than winning'],
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

const searchSpots = (s: St): string[] => (s.h.kind === 'child' && s.t.chance(0.6) ? HOME_SPOTS : s.place.spots);
